// AssistantClient: the browser side of WebSocket protocol 1.1 (docs/protocol.md).
//
// Dependency-free ES module. It owns the connection (subprotocol auth, reconnect with
// exponential backoff and jitter), the request ids, and the one rule that keeps the editor
// honest: a suggestion is surfaced only while its id is the latest suggest id, so nothing
// stale ever reaches the screen even if the network reorders or lags.
//
// With a 1.1 server (the ready frame's protocol_minor >= 1) the document is sent once (open)
// and each keystroke sends one suggest carrying only the change (in code points), so a
// keystroke costs a few dozen bytes whatever the document's size.
// A v1 server gets the v1 frames, unchanged.

export const PROTOCOL = "assistant.v1";

const DEFAULT_BACKOFF = { initialMs: 250, maxMs: 15000, factor: 2 };

/** Close code of a connection whose writer token expired mid-session (docs/protocol.md). */
export const TOKEN_EXPIRED = 4001;

/** The delay before reconnect attempt `attempt` (0-based): exponential, capped, with
 * "equal jitter" (half fixed, half random) so a restarted server is not stampeded. */
export function backoffDelay(attempt, { initialMs, maxMs, factor } = DEFAULT_BACKOFF, random = Math.random) {
  const ceiling = Math.min(maxMs, initialMs * factor ** attempt);
  return ceiling / 2 + random() * (ceiling / 2);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const ANY_SURROGATE = /[\uD800-\uDFFF]/;

/** `text` with any lone surrogate (which JSON cannot carry to the server) replaced by U+FFFD:
 * same length in UTF-16 units and in code points, so offsets still line up. */
export function wellFormed(text) {
  return typeof text.toWellFormed === "function" ? text.toWellFormed() : text.replace(LONE_SURROGATE, "\uFFFD");
}

/** Code points in text[from, to) (UTF-16 indices that do not split a surrogate pair). */
export function codePoints(text, from = 0, to = text.length) {
  let n = to - from;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff && i > from) n--; // the second half of a pair
  }
  return n;
}

/** The one change that turns `before` into `after` (both well-formed), in code points:
 * [start, end, text], or null when they are equal. The common ends never split a pair. */
export function codePointChange(before, after) {
  if (before === after) return null;
  const max = Math.min(before.length, after.length);
  let p = 0;
  while (p < max && before.charCodeAt(p) === after.charCodeAt(p)) p++;
  if (p > 0 && isHigh(before.charCodeAt(p - 1))) p--;
  let s = 0;
  while (s < max - p && before.charCodeAt(before.length - 1 - s) === after.charCodeAt(after.length - 1 - s)) s++;
  if (s > 0 && isLow(before.charCodeAt(before.length - s))) s--;
  const astral = ANY_SURROGATE.test(before);
  const start = astral ? codePoints(before, 0, p) : p;
  const end = start + (astral ? codePoints(before, p, before.length - s) : before.length - s - p);
  return [start, end, after.slice(p, after.length - s)];
}

function isHigh(c) {
  return c >= 0xd800 && c <= 0xdbff;
}

function isLow(c) {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** The server's token for this page: taken from the URL fragment (`#token=…`, which a browser
 * never sends in a request line) and then removed from the address bar, or, after that, the one
 * kept for this tab under `key` in sessionStorage. null when there is none. */
export function tokenFromFragment(key = "assistant.token") {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromUrl = params.get("token");
  if (fromUrl) {
    try {
      sessionStorage.setItem(key, fromUrl);
    } catch {
      // storage disabled: the token lives for this page only
    }
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
    return fromUrl;
  }
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

export class AssistantClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.url      ws:// or wss:// URL of /v1/ws
   * @param {string | (() => string | Promise<string>)} options.token  the server's token (sent
   *   as the subprotocol assistant.v1.<token>), or a function that returns a fresh one (a writer
   *   token minted by the page's backend): called before every connection, so a token that
   *   expires mid-session (close 4001) is replaced and the client reconnects at once
   * @param {boolean} [options.reconnect=true]
   * @param {{initialMs:number,maxMs:number,factor:number}} [options.backoff]
   * @param {typeof WebSocket} [options.WebSocket]  for tests outside a browser
   */
  constructor({ url, token, reconnect = true, backoff = DEFAULT_BACKOFF, WebSocket: Impl } = {}) {
    super();
    if (!url) throw new TypeError("AssistantClient: url is required");
    this.url = url;
    this._tokenSource = typeof token === "function" ? token : null;
    this.token = this._tokenSource ? "" : token || "";
    this._fetchingToken = false;
    this.reconnect = reconnect;
    this.backoff = { ...DEFAULT_BACKOFF, ...backoff };
    this._Impl = Impl || globalThis.WebSocket;
    this._ws = null;
    this._state = "closed";
    this._closedByUser = false;
    this._attempt = 0;
    this._timer = null;
    this._nextId = 1;
    this._latestSuggest = 0; // the only suggest id whose frames are surfaced
    this._suggestText = ""; // deltas so far for _latestSuggest
    this._suggestLive = false; // _latestSuggest still in flight and not cancelled
    this._reviews = new Set(); // review ids in flight
    this._pings = new Map(); // ping id -> performance.now() when sent
    this._connFirstId = 1; // ids below were sent on an earlier connection
    this.sessionCostUsd = 0;
    this.server = null; // the last ready frame
    this._doc = null; // protocol 1.1: {text, cursor (code points), version} the server holds
  }

  /** "connecting" | "connected" | "reconnecting" | "closed" */
  get state() {
    return this._state;
  }

  /** The id of the latest suggest; frames for any other id are dropped. */
  get latestSuggestId() {
    return this._latestSuggest;
  }

  get connected() {
    return this._state === "connected";
  }

  /** True when the server speaks protocol 1.1 (open / edit / suggest by version). */
  get documents() {
    const s = this.server;
    return !!s && s.protocol === 1 && typeof s.protocol_minor === "number" && s.protocol_minor >= 1;
  }

  /** The version of the document the server holds (the id of the last open, edit or suggest
   * that carried a change), or null. */
  get documentVersion() {
    return this._doc ? this._doc.version : null;
  }

  connect() {
    this._closedByUser = false;
    if (this._ws || this._fetchingToken) return this;
    clearTimeout(this._timer);
    this._timer = null;
    this._open();
    return this;
  }

  close() {
    this._closedByUser = true;
    clearTimeout(this._timer);
    this._timer = null;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      try {
        ws.close(1000, "client closed");
      } catch {
        // already closing
      }
    }
    this._abandonInFlight("closed");
    this._setState("closed", {});
  }

  /** Only the text near the cursor matters, and the server refuses more than its limits. */
  _withinLimits(prefix, suffix) {
    const limits = (this.server && this.server.limits) || {};
    const maxPrefix = limits.max_prefix_chars || 100000;
    const maxSuffix = limits.max_suffix_chars || 20000;
    prefix = String(prefix);
    suffix = String(suffix);
    if (prefix.length > maxPrefix) prefix = prefix.slice(prefix.length - maxPrefix);
    if (suffix.length > maxSuffix) suffix = suffix.slice(0, maxSuffix);
    return [prefix, suffix];
  }

  /** Ask for a continuation of prefix|suffix. Returns the id; any earlier suggestion is
   * superseded from this moment, locally, whatever the server still sends for it. */
  suggest(prefix, suffix = "") {
    [prefix, suffix] = this._withinLimits(prefix, suffix);
    return this._startSuggest({ prefix, suffix });
  }

  /** Ask for a continuation at `cursor` (a UTF-16 index, as a textarea's selectionStart) of
   * `text`, the whole document. With a 1.1 server one frame goes out: a suggest carrying only
   * the change since the last call (or naming the version when nothing changed; an open first
   * when the server holds no copy). Otherwise it is suggest(prefix, suffix). */
  suggestAt(text, cursor) {
    text = String(text);
    const next = this._documentState(text, cursor);
    if (!next) return this.suggest(text.slice(0, cursor), text.slice(cursor));
    if (!this._doc) {
      if (!this.syncDocument(text, cursor)) return this.suggest(text.slice(0, cursor), text.slice(cursor));
      return this._startSuggest({ version: this._doc.version });
    }
    if (!next.edit) return this._startSuggest({ version: this._doc.version });
    const id = this._startSuggest(next.edit);
    this._doc = this._suggestLive ? { text: next.text, cursor: next.cursor, version: id } : null;
    return id;
  }

  /** Bring the server's copy of the document to `text` with the cursor at `cursor` (UTF-16)
   * without asking for a suggestion: open the first time (and after a reconnect or a resync),
   * edit afterwards, nothing when it is already there. False when the server cannot hold it
   * (a v1 server, over its limits, not connected); the caller then sends v1 frames. */
  syncDocument(text, cursor) {
    const next = this._documentState(String(text), cursor);
    if (!next) return false;
    if (this._doc && !next.edit) return true;
    const id = this._takeId();
    const frame = this._doc
      ? { type: "edit", id, ...next.edit }
      : { type: "open", id, text: next.text, cursor: next.cursor };
    this._doc = this._send(frame) ? { text: next.text, cursor: next.cursor, version: id } : null;
    return this._doc !== null;
  }

  /** {text, cursor, edit} for a 1.1 server: the text as sent (well-formed), the cursor in code
   * points, and the edit fields from the server's copy (null when nothing changed or nothing
   * is open). null when documents cannot be used now. */
  _documentState(text, cursor) {
    if (!this.documents || !this.connected) return null;
    text = wellFormed(text);
    cursor = Math.max(0, Math.min(text.length, cursor | 0));
    if (!this._fits(text)) {
      this._doc = null;
      return null;
    }
    const cursorCp = ANY_SURROGATE.test(text) ? codePoints(text, 0, cursor) : cursor;
    const doc = this._doc;
    let edit = null;
    if (doc) {
      const change = codePointChange(doc.text, text);
      if (change || cursorCp !== doc.cursor) {
        edit = { base: doc.version, changes: change ? [change] : [], cursor: cursorCp };
      }
    }
    return { text, cursor: cursorCp, edit };
  }

  /** Whether `text` is within the server's document limits (code points, one open frame). */
  _fits(text) {
    const limits = (this.server && this.server.limits) || {};
    const maxChars = limits.max_document_chars || 120000;
    const maxBytes = (limits.max_frame_bytes || 1048576) - 96;
    if (text.length > maxChars && codePoints(text) > maxChars) return false;
    if (text.length * 6 + 2 <= maxBytes) return true; // every unit escaped as \uXXXX still fits
    return new TextEncoder().encode(JSON.stringify(text)).length <= maxBytes;
  }

  _startSuggest(fields) {
    const id = this._takeId();
    this._latestSuggest = id;
    this._suggestText = "";
    this._suggestLive = this._send({ type: "suggest", id, ...fields });
    if (!this._suggestLive) this._later("cancelled", { id, kind: "suggest", reason: "disconnected" });
    return id;
  }

  /** A document was opened: the server lets its offline tier learn it now (no reply). */
  warm(prefix, suffix = "") {
    const [p, s] = this._withinLimits(prefix, suffix);
    return this._send({ type: "warm", id: this._takeId(), prefix: p, suffix: s });
  }

  /** Stop suggestion `id` (Esc, cursor moved). Nothing more is surfaced for it. */
  cancel(id) {
    if (id !== this._latestSuggest || !this._suggestLive) return;
    this._suggestLive = false;
    this._send({ type: "cancel", id });
  }

  /** Telemetry: the user accepted `chars` characters of suggestion `id`. */
  accept(id, chars) {
    // the server only knows ids of this connection
    if (id >= this._connFirstId) this._send({ type: "accept", id, chars: Math.max(0, chars | 0) });
  }

  review(text) {
    const id = this._takeId();
    if (this._send({ type: "review", id, text: String(text) })) this._reviews.add(id);
    else this._later("cancelled", { id, kind: "review", reason: "disconnected" });
    return id;
  }

  cancelReview(id) {
    if (this._reviews.has(id)) this._send({ type: "cancel_review", id });
  }

  ping() {
    const id = this._takeId();
    if (this._send({ type: "ping", id })) this._pings.set(id, now());
    return id;
  }

  // ---- connection -------------------------------------------------------------------

  _open() {
    this._setState(this._attempt === 0 ? "connecting" : "reconnecting", { attempt: this._attempt });
    if (!this._tokenSource) {
      this._openSocket();
      return;
    }
    // A fresh token first: the page's backend mints writer tokens, and the one this client
    // was given may have expired (that is why a connection closes with 4001).
    this._fetchingToken = true;
    let pending;
    try {
      pending = Promise.resolve(this._tokenSource());
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (token) => {
        this._fetchingToken = false;
        if (this._closedByUser || this._ws) return;
        this.token = String(token || "");
        this._openSocket();
      },
      (err) => {
        this._fetchingToken = false;
        if (this._closedByUser || this._ws) return;
        const reason = `no token: ${(err && err.message) || err}`;
        this._scheduleReconnect({ code: 0, reason, refused: true });
      },
    );
  }

  _openSocket() {
    let ws;
    try {
      // Offer the bare protocol too: a browser fails the handshake unless the server picks
      // one of the offered names, and the server answers with "assistant.v1".
      ws = new this._Impl(this.url, [PROTOCOL, `${PROTOCOL}.${this.token}`]);
    } catch (err) {
      this._scheduleReconnect({ code: 0, reason: String(err && err.message), refused: true });
      return;
    }
    this._ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
    };
    ws.onmessage = (ev) => {
      if (this._ws === ws) this._onFrame(ev.data);
    };
    ws.onclose = (ev) => {
      if (this._ws !== ws) return; // a socket we already let go of
      this._ws = null;
      this._abandonInFlight("disconnected");
      // A socket that never opened was refused (bad token, foreign Origin: HTTP 403) or the
      // server is unreachable; the browser hides which (code 1006) on purpose.
      this._scheduleReconnect({ code: ev.code, reason: ev.reason, refused: !opened });
    };
    ws.onerror = () => {
      // always followed by close
    };
  }

  _scheduleReconnect(info) {
    if (this._closedByUser || !this.reconnect) {
      this._setState("closed", info);
      return;
    }
    // A token that expired mid-session: a fresh one is fetched and the writer is back at once
    // (only after a connection that opened, so a backend handing out stale tokens meets the
    // backoff: the server refuses those before the socket opens).
    const fresh = info.code === TOKEN_EXPIRED && this._tokenSource && !info.refused;
    const delayMs = fresh ? 0 : Math.round(backoffDelay(this._attempt, this.backoff));
    this._attempt += 1;
    this._setState("reconnecting", { ...info, attempt: this._attempt, delayMs });
    this._timer = setTimeout(() => {
      this._timer = null;
      if (!this._closedByUser && !this._ws) this._open();
    }, delayMs);
  }

  _setState(state, detail) {
    this._state = state;
    this._emit("state", { state, ...detail });
  }

  _send(frame) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1 || this._state !== "connected") return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  _takeId() {
    return this._nextId++;
  }

  _abandonInFlight(reason) {
    if (this._suggestLive) {
      this._suggestLive = false;
      this._emit("cancelled", { id: this._latestSuggest, kind: "suggest", reason });
    }
    for (const id of this._reviews) this._emit("cancelled", { id, kind: "review", reason });
    this._reviews.clear();
    this._pings.clear();
  }

  // ---- frames -----------------------------------------------------------------------

  _onFrame(data) {
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return; // not ours to crash on
    }
    if (!f || typeof f !== "object") return;
    switch (f.type) {
      case "ready":
        this.server = f;
        this._doc = null; // a new connection holds no document
        this._attempt = 0;
        this._connFirstId = this._nextId;
        this._setState("connected", { protocol: f.protocol, provider: f.provider, model: f.model });
        this._emit("ready", f);
        break;
      case "delta":
        if (this._isLive(f.id) && typeof f.text === "string") {
          this._suggestText += f.text;
          this._emit("suggestion", { id: f.id, text: this._suggestText, final: false, source: null });
        }
        break;
      case "done":
        this._addCost(f.cost_usd);
        if (this._isLive(f.id)) {
          this._suggestLive = false;
          this._suggestText = "";
          this._emit("suggestion", {
            id: f.id,
            text: typeof f.text === "string" ? f.text : "",
            final: true,
            source: f.source ?? null,
            model: f.model ?? null,
            latency_ms: typeof f.latency_ms === "number" ? f.latency_ms : null,
            cost_usd: typeof f.cost_usd === "number" ? f.cost_usd : 0,
            session_cost_usd: this.sessionCostUsd,
          });
        }
        break;
      case "cancelled": {
        const kind = this._kindOf(f.id);
        this._settle(f.id);
        this._emit("cancelled", { id: f.id, kind, reason: f.reason ?? null });
        break;
      }
      case "error": {
        const kind = this._kindOf(f.id);
        this._settle(f.id);
        // The server's copy is not what we think (resync), or the frame that made our version
        // was refused: the next sync sends the whole text again.
        if (this._doc && (f.code === "resync" || f.id === this._doc.version)) this._doc = null;
        this._emit("error", { id: f.id ?? null, kind, code: f.code ?? "internal", message: f.message ?? "" });
        break;
      }
      case "status":
        this._emit("status", f);
        break;
      case "pong": {
        const sent = this._pings.get(f.id);
        this._pings.delete(f.id);
        this._emit("pong", { id: f.id, rtt_ms: sent === undefined ? null : now() - sent });
        break;
      }
      case "review_delta":
        if (this._reviews.has(f.id)) this._emit("review-delta", { id: f.id, text: f.text ?? "" });
        break;
      case "finding":
        if (this._reviews.has(f.id)) this._emit("finding", f);
        break;
      case "finding_retracted":
        // Sonnet withdrew a finding of this review sent earlier (by its index): the editor
        // must drop it, or the writer may apply a fix the review no longer stands by.
        if (this._reviews.has(f.id) && Number.isInteger(f.index)) {
          this._emit("finding-retracted", { id: f.id, index: f.index, reason: String(f.reason ?? "") });
        }
        break;
      case "check":
        // Corrections as you type: its model cost (if any) is part of the session's.
        this._addCost(f.cost_usd);
        this._emit("check", { ...f, session_cost_usd: this.sessionCostUsd });
        break;
      case "review_done":
        this._addCost(f.cost_usd);
        if (this._reviews.delete(f.id)) this._emit("review-done", { ...f, session_cost_usd: this.sessionCostUsd });
        break;
      default:
        break; // a newer server's frame: ignore
    }
  }

  _isLive(id) {
    return this._suggestLive && id === this._latestSuggest;
  }

  _kindOf(id) {
    if (this._reviews.has(id)) return "review";
    if (id === this._latestSuggest) return "suggest";
    return null;
  }

  _settle(id) {
    if (id === this._latestSuggest) this._suggestLive = false;
    this._reviews.delete(id);
    this._pings.delete(id);
  }

  _addCost(c) {
    if (typeof c === "number" && Number.isFinite(c) && c > 0) this.sessionCostUsd += c;
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _later(type, detail) {
    queueMicrotask(() => this._emit(type, detail));
  }
}

function now() {
  return globalThis.performance ? performance.now() : Date.now();
}
