// /demo/codemirror: a CodeMirror 6 editor with the assistant extension, nothing more.

import { defaultKeymap, history, historyKeymap } from "@codemirror/commands";
import { lintGutter } from "@codemirror/lint";
import { EditorView, drawSelection, keymap } from "@codemirror/view";
import { assistant, reviewFindings, startReview, suggestionLog } from "../src/codemirror.js";
import { demoClient, onReviewClick, reviewStatus } from "./page.js";

const client = demoClient();
const view = new EditorView({
  parent: document.getElementById("editor"),
  extensions: [
    history(),
    drawSelection(),
    keymap.of([...defaultKeymap, ...historyKeymap]),
    EditorView.lineWrapping,
    lintGutter(),
    assistant({ client, onReviewStatus: reviewStatus }),
    // The page's Content-Security-Policy admits styles with this response's nonce only:
    // CodeMirror writes its own style element, and tags it with this.
    EditorView.cspNonce.of(document.querySelector("meta[name=csp-nonce]")?.content ?? ""),
  ],
});
onReviewClick(() => startReview(view));
window.assistantView = view;
window.assistantClient = client;
window.assistantLog = suggestionLog(view);
window.assistantFindings = () => reviewFindings(view);
view.focus();
