"""AssistantClient (server/static/client.js) against a scripted WebSocket in the page:
the id rules that keep stale suggestions off the screen, cost tracking, reconnect state."""

from __future__ import annotations

FAKE_SOCKET = """
window.sockets = [];
window.FakeWS = class {
  constructor(url, protocols) {
    this.url = url; this.protocols = protocols; this.readyState = 0; this.sent = [];
    window.sockets.push(this);
  }
  send(s) { this.sent.push(JSON.parse(s)); }
  close() { this.readyState = 3; }
  open() { this.readyState = 1; this.onopen && this.onopen({}); }
  frame(f) { this.onmessage({data: JSON.stringify(f)}); }
  drop(code, opened) { this.readyState = 3; this.onclose({code, reason: ""}); }
};
"""


def load_client(page, static_site):
    page.goto(f"{static_site.url}/blank.html")
    page.add_script_tag(content=FAKE_SOCKET)
    page.evaluate(
        """async () => {
          const m = await import('/static/client.js');
          window.m = m;
          const c = new m.AssistantClient({url: 'ws://x/v1/ws', token: 'tok', WebSocket: FakeWS,
                                           backoff: {initialMs: 10, maxMs: 40, factor: 2}});
          window.c = c;
          window.events = [];
          for (const t of ['ready','suggestion','cancelled','error','status','review-delta',
                           'finding','finding-retracted','review-done','state','pong'])
            c.addEventListener(t, e => events.push({...e.detail, type: t}));
          c.connect();
          sockets[0].open();
          sockets[0].frame({type: 'ready', protocol: 1, provider: 'emulator', model: 'm'});
        }"""
    )


def test_client_offers_the_token_subprotocol_and_reports_connected(page, static_site):
    load_client(page, static_site)
    protocols = page.evaluate("sockets[0].protocols")
    assert protocols == ["assistant.v1", "assistant.v1.tok"]
    states = page.evaluate("events.filter(e => e.type === 'state').map(e => e.state)")
    assert states == ["connecting", "connected"]


def test_only_the_latest_suggest_id_is_surfaced(page, static_site):
    load_client(page, static_site)
    shown = page.evaluate(
        """() => {
          const ws = sockets[0];
          const a = c.suggest('Thanks for', '');
          const b = c.suggest('Thanks for the', '');
          ws.frame({type: 'delta', id: a, text: ' STALE'});
          ws.frame({type: 'done', id: a, text: ' STALE', source: 'model', cost_usd: 0.5});
          ws.frame({type: 'delta', id: b, text: ' quick'});
          ws.frame({type: 'delta', id: b, text: ' reply.'});
          ws.frame({type: 'done', id: b, text: ' quick reply.', source: 'model',
                    latency_ms: 12.5, cost_usd: 0.25});
          ws.frame({type: 'delta', id: b, text: ' after done'});
          return {ids: [a, b], sent: ws.sent,
                  shown: events.filter(e => e.type === 'suggestion'), cost: c.sessionCostUsd};
        }"""
    )
    a, b = shown["ids"]
    assert b > a
    assert [f["id"] for f in shown["sent"]] == [a, b]
    assert [(s["id"], s["text"], s["final"]) for s in shown["shown"]] == [
        (b, " quick", False),
        (b, " quick reply.", False),
        (b, " quick reply.", True),
    ]
    final = shown["shown"][-1]
    assert final["source"] == "model" and final["latency_ms"] == 12.5
    # cost is spent whether or not the suggestion was shown
    assert abs(shown["cost"] - 0.75) < 1e-9


def test_suggest_keeps_to_the_servers_limits(page, static_site):
    load_client(page, static_site)
    sent = page.evaluate(
        """() => {
          const ws = sockets[0];
          ws.frame({type: 'ready', protocol: 1, provider: 'emulator', model: 'm',
                    limits: {max_prefix_chars: 10, max_suffix_chars: 4}});
          c.suggest('0123456789abcdefghij', 'WXYZ-tail');
          return ws.sent[ws.sent.length - 1];
        }"""
    )
    # The text nearest the cursor is kept: the end of the prefix, the start of the suffix.
    assert (sent["prefix"], sent["suffix"]) == ("abcdefghij", "WXYZ")


def test_warm_sends_the_opened_document_with_a_fresh_id(page, static_site):
    load_client(page, static_site)
    sent = page.evaluate(
        """() => {
          const ws = sockets[0];
          c.warm('Chapter one', '');
          const id = c.suggest('Chapter one ', '');
          return {warm: ws.sent[ws.sent.length - 2], suggestId: id};
        }"""
    )
    assert sent["warm"]["type"] == "warm" and sent["warm"]["prefix"] == "Chapter one"
    assert sent["suggestId"] > sent["warm"]["id"]  # one id sequence for every opening frame


def test_cancel_stops_surfacing_and_sends_cancel(page, static_site):
    load_client(page, static_site)
    r = page.evaluate(
        """() => {
          const ws = sockets[0];
          const id = c.suggest('Dear Sam,', '');
          c.cancel(id);
          ws.frame({type: 'delta', id, text: ' late'});
          ws.frame({type: 'cancelled', id, reason: 'client'});
          return {sent: ws.sent.map(f => f.type),
                  shown: events.filter(e => e.type === 'suggestion').length,
                  cancelled: events.filter(e => e.type === 'cancelled')};
        }"""
    )
    assert r["sent"] == ["suggest", "cancel"]
    assert r["shown"] == 0
    assert r["cancelled"][0]["reason"] == "client"


def test_review_findings_and_done(page, static_site):
    load_client(page, static_site)
    r = page.evaluate(
        """() => {
          const ws = sockets[0];
          const id = c.review('I saw teh cat.');
          ws.frame({type: 'review_delta', id, text: '{'});
          ws.frame({type: 'finding', id, index: 0, quote: 'teh', problem: 'Misspelling',
                    replacement: 'the', severity: 'low', start: 6, end: 9});
          ws.frame({type: 'finding', id: id + 100, quote: 'x'});
          ws.frame({type: 'review_done', id, findings: 1, cost_usd: 0.01, latency_ms: 5});
          return events.filter(e => ['review-delta','finding','review-done'].includes(e.type))
                       .map(e => e.type);
        }"""
    )
    assert r == ["review-delta", "finding", "review-done"]


def test_a_retraction_is_surfaced_for_its_review_only(page, static_site):
    load_client(page, static_site)
    r = page.evaluate(
        """() => {
          const ws = sockets[0];
          const id = c.review('I saw teh cat.');
          ws.frame({type: 'finding', id, index: 0, quote: 'teh', problem: 'Misspelling',
                    replacement: 'the', severity: 'low', start: 6, end: 9});
          ws.frame({type: 'finding_retracted', id: id + 100, index: 0, reason: 'x'});
          ws.frame({type: 'finding_retracted', id, index: 'zero', reason: 'x'});
          ws.frame({type: 'finding_retracted', id, index: 0, reason: 'contradicted by Sonnet'});
          ws.frame({type: 'review_done', id, findings: 0, cost_usd: 0.01, latency_ms: 5});
          ws.frame({type: 'finding_retracted', id, index: 0, reason: 'late'});
          return events.filter(e => e.type.startsWith('finding') || e.type === 'review-done')
                       .map(e => [e.type, e.index ?? null, e.reason ?? null]);
        }"""
    )
    assert r == [
        ["finding", 0, None],
        ["finding-retracted", 0, "contradicted by Sonnet"],
        ["review-done", None, None],
    ]


def test_garbage_frames_do_not_break_the_client(page, static_site):
    load_client(page, static_site)
    r = page.evaluate(
        """() => {
          const ws = sockets[0];
          ws.onmessage({data: 'not json'});
          ws.onmessage({data: '[1,2]'});
          ws.onmessage({data: 'null'});
          ws.frame({type: 'from_the_future'});
          const id = c.suggest('Hello', '');
          ws.frame({type: 'done', id, text: ' there', source: 'cache'});
          return events.filter(e => e.type === 'suggestion').map(e => e.text);
        }"""
    )
    assert r == [" there"]


def test_reconnects_with_backoff_and_reports_refusal(page, static_site):
    load_client(page, static_site)
    r = page.evaluate(
        """async () => {
          const id = c.suggest('Hello', '');
          sockets[0].drop(1006);
          // the next socket never opens: a refused handshake
          await new Promise(r => { const t = setInterval(() => { if (sockets.length > 1) { clearInterval(t); r(); } }, 5); });
          sockets[1].drop(1006);
          await new Promise(r => { const t = setInterval(() => { if (sockets.length > 2) { clearInterval(t); r(); } }, 5); });
          sockets[2].open();
          sockets[2].frame({type: 'ready', protocol: 1});
          const lost = events.filter(e => e.type === 'cancelled' && e.id === id);
          const states = events.filter(e => e.type === 'state');
          const delays = [];
          for (let i = 0; i < 8; i++) delays.push(m.backoffDelay(i, {initialMs: 100, maxMs: 1000, factor: 2}));
          return {lost: lost.map(e => e.reason), states, delays, state: c.state};
        }"""
    )
    assert r["lost"] == ["disconnected"]
    reconnecting = [s for s in r["states"] if s["state"] == "reconnecting" and "delayMs" in s]
    assert [s["refused"] for s in reconnecting] == [False, True]
    assert r["state"] == "connected"
    for i, d in enumerate(r["delays"]):
        ceiling = min(1000, 100 * 2**i)
        assert ceiling / 2 <= d <= ceiling


def test_a_token_that_expires_mid_session_is_replaced_by_a_fresh_one_at_once(page, static_site):
    """``token`` as a function (the page's backend mints writer tokens): called before every
    connection; after a 4001 close the client reconnects with no backoff, with the new token.
    A function that fails is a refused attempt, retried with backoff."""
    page.goto(f"{static_site.url}/blank.html")
    page.add_script_tag(content=FAKE_SOCKET)
    r = page.evaluate(
        """async () => {
          const m = await import('/static/client.js');
          const until = (f) => new Promise(r => { const t = setInterval(() => { if (f()) { clearInterval(t); r(); } }, 5); });
          const minted = ['first', 'second'];
          let calls = 0;
          const c = new m.AssistantClient({url: 'ws://x/v1/ws', WebSocket: FakeWS,
            // a long backoff: a reconnect that waited on it would not come within the test
            backoff: {initialMs: 60000, maxMs: 60000, factor: 1},
            token: async () => { calls += 1; if (calls === 3) throw new Error('backend down'); return minted.shift(); }});
          const states = [];
          c.addEventListener('state', e => states.push(e.detail));
          c.connect();
          await until(() => sockets.length === 1);
          sockets[0].open();
          sockets[0].frame({type: 'ready', protocol: 1});
          sockets[0].drop(m.TOKEN_EXPIRED);
          await until(() => sockets.length === 2);
          sockets[1].open();
          sockets[1].frame({type: 'ready', protocol: 1});
          const second = c.state;
          sockets[1].drop(m.TOKEN_EXPIRED);  // the backend is down this time
          await until(() => states.some(s => s.refused && /backend down/.test(s.reason)));
          return {protocols: sockets.map(s => s.protocols[1]), second, calls, sockets: sockets.length,
                  last: states[states.length - 1]};
        }"""
    )
    assert r["protocols"] == ["assistant.v1.first", "assistant.v1.second"]
    assert r["second"] == "connected"
    assert r["calls"] == 3 and r["sockets"] == 2
    assert r["last"]["state"] == "reconnecting" and r["last"]["delayMs"] >= 30000


READY_1_1 = (
    "{type: 'ready', protocol: 1, protocol_minor: 1, provider: 'emulator', model: 'm', "
    "limits: {max_prefix_chars: 100, max_suffix_chars: 20, max_document_chars: 120, "
    "max_frame_bytes: 1048576}}"
)


def test_with_a_1_1_server_a_keystroke_sends_only_the_change_in_code_points(page, static_site):
    load_client(page, static_site)
    sent = page.evaluate(
        """() => {
          const ws = sockets[0];
          ws.frame(READY);
          ws.sent.length = 0;
          const text = 'I 😀 emoji and 𝄞 music';          // two astral characters (4 units)
          c.suggestAt(text, text.length);
          const typed = 'I 😀 emoji, and 𝄞 music!';       // a comma after emoji, a ! at the end
          c.suggestAt(typed, typed.length);
          c.suggestAt(typed, typed.length);                // nothing changed: by version
          c.suggestAt(typed, 3);                           // the cursor moved: no change
          return ws.sent;
        }""".replace("READY", READY_1_1)
    )
    types = [f["type"] for f in sent]
    assert types == ["open", "suggest", "suggest", "suggest", "suggest"]
    opened, s1, edit, s2, move = sent
    assert opened["text"] == "I 😀 emoji and 𝄞 music" and opened["cursor"] == 21  # code points
    assert s1 == {"type": "suggest", "id": s1["id"], "version": opened["id"]}
    # One frame per keystroke: the suggest carries one change spanning the first and last
    # differences, in code points of the old text, and its id becomes the version.
    assert edit["base"] == opened["id"] and edit["cursor"] == len("I 😀 emoji, and 𝄞 music!")
    start, end, text = edit["changes"][0]
    old = "I 😀 emoji and 𝄞 music"
    assert old[:start] + text + old[end:] == "I 😀 emoji, and 𝄞 music!"
    assert (start, end, text) == (9, 21, ", and 𝄞 music!")
    assert s2 == {"type": "suggest", "id": s2["id"], "version": edit["id"]}
    assert move["changes"] == [] and move["cursor"] == 3 and move["base"] == edit["id"]
    ids = [f["id"] for f in sent]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_resync_or_a_reconnect_sends_the_whole_text_again(page, static_site):
    load_client(page, static_site)
    r = page.evaluate(
        """async () => {
          const ws = sockets[0];
          ws.frame(READY);
          c.suggestAt('Hello', 5);
          const id = c.suggestAt('Hello there', 11);
          ws.frame({type: 'error', id, code: 'resync', message: 'send open'});
          c.suggestAt('Hello there!', 12);
          const afterResync = ws.sent.slice(-2).map(f => f.type);
          ws.drop(1006);
          await new Promise(r => setTimeout(r, 80));
          const ws2 = sockets[1];
          ws2.open();
          ws2.frame(READY);
          c.suggestAt('Hello there!?', 13);
          return {afterResync, again: ws2.sent.map(f => [f.type, f.text]),
                  errors: events.filter(e => e.type === 'error').map(e => e.code)};
        }""".replace("READY", READY_1_1)
    )
    assert r["afterResync"] == ["open", "suggest"]
    assert r["again"][0] == ["open", "Hello there!?"]
    assert r["errors"] == ["resync"]


def test_a_v1_server_gets_v1_frames_and_too_big_a_document_falls_back(page, static_site):
    load_client(page, static_site)
    r = page.evaluate(
        """() => {
          const ws = sockets[0];
          c.suggestAt('v1 server text', 3);                          // the ready had no minor
          const v1 = ws.sent[ws.sent.length - 1];
          ws.frame(READY);
          c.suggestAt('x'.repeat(200), 150);                         // over max_document_chars
          const big = ws.sent[ws.sent.length - 1];
          c.suggestAt('ok \\uD800 lone', 4);                          // a lone surrogate
          const lone = ws.sent[ws.sent.length - 2];
          return {v1, big, lone, documents: c.documents};
        }""".replace("READY", READY_1_1)
    )
    assert r["v1"] == {
        "type": "suggest",
        "id": r["v1"]["id"],
        "prefix": "v1 ",
        "suffix": "server text",
    }
    assert r["big"]["type"] == "suggest" and len(r["big"]["prefix"]) == 100  # clipped, v1 style
    assert r["lone"]["type"] == "open" and r["lone"]["text"] == "ok \ufffd lone"
    assert r["documents"] is True
