// SuggestionSession: the editor-independent half of a ghost-text integration, shared by the
// CodeMirror extension and the ProseMirror plugin.
//
// An editor sees its document as a tree of its own; the server sees a string and a cursor. The
// host (one per editor) turns its state into a snapshot {text, cursor, key, at}; this module asks
// for suggestions with it and lets an answer through only while it is the client's latest id
// AND the editor still holds exactly the snapshot it was asked for (same document object, same
// cursor). Everything else (a late answer, one for a text since edited, one arriving mid-IME
// composition) is dropped, so nothing stale is ever shown.

/**
 * @typedef {object} Snapshot
 * @property {string} text   the whole document as the server sees it
 * @property {number} cursor UTF-16 index of the cursor in `text`
 * @property {unknown} key   identifies the editor's document (an immutable doc object)
 * @property {number} at     the cursor in the editor's own positions (where a ghost is drawn)
 */

/**
 * @typedef {object} Host
 * @property {() => Snapshot | null} snapshot  null when there is no collapsed cursor
 * @property {(ghost: {id: number, text: string, at: number} | null) => void} show
 * @property {() => boolean} composing  an IME composition is under way
 * @property {() => boolean} focused
 * @property {() => {text: string} | null} current  the ghost on screen
 */

/** Bounded log of the ghosts shown, for tests and debugging (oldest dropped first). */
const SHOWN_LOG_MAX = 5000;

export class SuggestionSession {
  /**
   * @param {import("./client.js").AssistantClient} client
   * @param {Host} host
   */
  constructor(client, host) {
    this.client = client;
    this.host = host;
    /** @type {{id: number, snap: Snapshot, resynced: boolean} | null} the latest request */
    this.pending = null;
    /** @type {object[]} every ghost shown: what it answered and what was on screen then */
    this.shown = [];
    this._listeners = [
      ["suggestion", (e) => this._onSuggestion(e.detail)],
      ["error", (e) => this._onError(e.detail)],
      ["ready", () => this._onReady()],
    ];
    for (const [type, fn] of this._listeners) client.addEventListener(type, fn);
  }

  /** Stop listening to the client (the editor is being destroyed). */
  destroy() {
    this.cancel();
    for (const [type, fn] of this._listeners) this.client.removeEventListener(type, fn);
  }

  /** Ask for a suggestion at the cursor (after an edit). A new suggest supersedes the previous
   * one on the server by itself, so no cancel frame is spent on it. */
  request(resynced = false) {
    const snap = this.host.composing() ? null : this.host.snapshot();
    if (!snap || !this.client.connected || !snap.text.slice(0, snap.cursor).trim()) {
      this.cancel();
      return;
    }
    const id = this.client.suggestAt(snap.text, snap.cursor);
    this.pending = { id, snap, resynced };
  }

  /** Stop the request in flight (Esc, a cursor move, blur, composition). */
  cancel() {
    if (this.pending) {
      this.client.cancel(this.pending.id);
      this.pending = null;
    }
  }

  /** A cursor move, a selection or someone else's edit stops the request for the old place. */
  cancelIfMoved() {
    const p = this.pending;
    if (!p) return;
    const now = this.host.snapshot();
    if (!now || now.key !== p.snap.key || now.at !== p.snap.at) this.cancel();
  }

  /** What accepting `part` ("all", or "word" for Ctrl+Right) of `ghost` inserts and leaves;
   * the server is told how much was taken (it counts what a writer gets). */
  take(ghost, part) {
    const text = part === "word" ? firstWord(ghost.text) : ghost.text;
    this.client.accept(ghost.id, text.length);
    return { text, rest: ghost.text.slice(text.length) };
  }

  _onSuggestion(d) {
    const p = this.pending;
    if (!p || d.id !== p.id || d.id !== this.client.latestSuggestId) return;
    if (this.host.composing()) return;
    const now = this.host.snapshot();
    if (!now || now.key !== p.snap.key || now.at !== p.snap.at) return;
    if (d.final) {
      this.pending = null;
    } else {
      // After a type-through the rest of the old ghost is still up: an answer that has not
      // caught up with it yet would only make it flicker shorter.
      const g = this.host.current();
      if (g && g.text.startsWith(d.text)) return;
    }
    this.host.show(d.text ? { id: d.id, text: d.text, at: p.snap.at } : null);
    if (!d.text) return;
    this.shown.push({
      id: d.id,
      latest: this.client.latestSuggestId,
      final: d.final,
      source: d.source,
      text: d.text,
      requestPrefix: p.snap.text.slice(0, p.snap.cursor),
      before: now.text.slice(0, now.cursor),
    });
    if (this.shown.length > SHOWN_LOG_MAX) this.shown.splice(0, this.shown.length - SHOWN_LOG_MAX);
  }

  _onError(d) {
    if (!this.pending || d.id !== this.pending.id) return;
    const retry = d.code === "resync" && !this.pending.resynced;
    this.pending = null;
    // The server's copy of the text was out of step: the client re-opens it; ask again once.
    if (retry) this.request(true);
  }

  _onReady() {
    // A new connection holds no document: open it (1.1) or warm the offline tier (v1) where
    // the writer will go on, then ask again if the writer is here.
    this.pending = null;
    const snap = this.host.snapshot();
    if (!snap || !snap.text) return;
    if (!this.client.syncDocument(snap.text, snap.cursor)) {
      this.client.warm(snap.text.slice(0, snap.cursor), snap.text.slice(snap.cursor));
    }
    if (this.host.focused()) this.request();
  }
}

/** UTF-16 index of code point offset `cp` in `text` (the server counts code points). */
export function utf16Index(text, cp) {
  let i = 0;
  for (let n = 0; n < cp && i < text.length; n++) {
    const c = text.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < text.length ? 2 : 1;
  }
  return i;
}

/** Where a review finding sits in `reviewed` (the text as sent), in UTF-16: its offsets when
 * they hold its quote, else the quote's first occurrence, else null. */
export function findingRange(reviewed, finding) {
  const quote = String(finding.quote ?? "");
  if (!quote) return null;
  let from = utf16Index(reviewed, finding.start | 0);
  if (reviewed.slice(from, from + quote.length) !== quote) from = reviewed.indexOf(quote);
  return from < 0 ? null : { from, to: from + quote.length, quote };
}

/** The first word of `text` with the spaces before it: what Ctrl+Right takes of a ghost. */
export function firstWord(text) {
  const m = /^\s*\S+/u.exec(text);
  return m ? m[0] : text;
}

/** The review in flight and the findings it sends, for one editor. The host places each
 * finding (a range in the text as sent, which it maps through the edits made since) and drops
 * retracted ones, so a fix the review no longer stands by cannot be applied. */
export class ReviewSession {
  /**
   * @param {import("./client.js").AssistantClient} client
   * @param {{finding: (f: object, range: {from: number, to: number, quote: string} | null) => void,
   *          retracted: (index: number) => void,
   *          status: (text: string, ended: boolean) => void}} host
   */
  constructor(client, host) {
    this.client = client;
    this.host = host;
    this.id = null;
    this.reviewed = "";
    this._listeners = [
      ["finding", (e) => this._running(e.detail.id) && this.host.finding(e.detail, findingRange(this.reviewed, e.detail))],
      ["finding-retracted", (e) => this._running(e.detail.id) && this.host.retracted(e.detail.index)],
      ["review-done", (e) => this._done(e.detail)],
      ["cancelled", (e) => this._ended(e.detail, e.detail.reason === "client" ? "Review stopped." : `Review ended (${e.detail.reason || "cancelled"}).`)],
      ["error", (e) => this._ended(e.detail, `Review failed: ${e.detail.message || e.detail.code}`)],
    ];
    for (const [type, fn] of this._listeners) client.addEventListener(type, fn);
  }

  destroy() {
    if (this.id !== null) this.client.cancelReview(this.id);
    for (const [type, fn] of this._listeners) this.client.removeEventListener(type, fn);
  }

  /** Review `text` (the whole document); an earlier review still running is stopped. Returns
   * the review id, or null when there is nothing to do. */
  start(text) {
    if (this.id !== null) this.client.cancelReview(this.id);
    this.id = null;
    if (!this.client.connected) {
      this.host.status("Not connected.", true);
      return null;
    }
    if (!text.trim()) {
      this.host.status("Nothing to review yet.", true);
      return null;
    }
    this.reviewed = text;
    this.id = this.client.review(text);
    this.host.status("Reviewing…", false);
    return this.id;
  }

  _running(id) {
    return this.id !== null && id === this.id;
  }

  _done(d) {
    if (!this._running(d.id)) return;
    this.id = null;
    const n = d.findings ?? 0;
    this.host.status(`${n} finding${n === 1 ? "" : "s"}`, true);
  }

  _ended(d, message) {
    if (!this._running(d.id)) return;
    this.id = null;
    this.host.status(message, true);
  }
}
