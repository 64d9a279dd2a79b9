// What both demo pages share: the token from the URL fragment (as the editor at / takes it:
// never sent in a request line, then kept for this tab), the client, and the status line.

import { AssistantClient, tokenFromFragment } from "../src/client.js";

/** The page's client (connected when there is a token), with the connection shown in #conn
 * and a review's progress in #review-status. */
export function demoClient() {
  const token = tokenFromFragment();
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
  const client = new AssistantClient({ url, token: token || "" });
  const conn = document.getElementById("conn");
  client.addEventListener("state", (e) => {
    const { state, refused } = e.detail;
    conn.dataset.state = refused ? "refused" : state;
    conn.textContent = refused ? "refused or unreachable" : state;
  });
  if (token) client.connect();
  else conn.textContent = "no token: open the URL that `assistant serve` printed, with /demo/… in place of /";
  return client;
}

export function reviewStatus(text, ended) {
  const el = document.getElementById("review-status");
  el.textContent = text;
  el.dataset.ended = String(ended);
}

export function onReviewClick(fn) {
  document.getElementById("review-btn").addEventListener("click", fn);
}
