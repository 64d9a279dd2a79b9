// The web editor: a textarea with ghost-text suggestions, a readout, and the deep review panel.
//
// The ghost is drawn in a layer under the transparent textarea that lays out the same text the
// same way (font, padding, wrapping, scroll): the text before the cursor invisibly, then the
// suggestion in grey. A ghost is shown only if it answers the latest request, made for exactly
// the text and cursor on screen; window.__shown records every one shown, for the browser tests.
//
// Only what is on screen is accepted: a ghost that wraps past the bottom edge scrolls into view
// (the textarea gets room below its text while it shows), and Tab, Ctrl+Right and the Accept
// button take no more of it than the rows in view (a writer once saw "dge before" and got
// "dge before winter"). Tab never leaves the text area: without a ghost it does nothing, so a
// space typed next cannot press a button; Esc then Tab moves the focus on, for keyboard users.

import { CheckMarks } from "./checks.js";
import { AssistantClient, tokenFromFragment } from "./client.js";

const TOKEN_KEY = "assistant.token";
const SHOWN_LOG_MAX = 5000;

const $ = (id) => document.getElementById(id);

// ---- token: from the URL fragment (never sent in a request line), kept per tab: client.js ------

function wsUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
}

// ---- text helpers ------------------------------------------------------------------------------

/** UTF-16 index of code point offset `cp` in `text` (the server counts code points). */
function cpToUtf16(text, cp) {
  let i = 0;
  for (let n = 0; n < cp && i < text.length; n++) {
    const c = text.charCodeAt(i);
    i += c >= 0xd800 && c <= 0xdbff && i + 1 < text.length ? 2 : 1;
  }
  return i;
}

/** The next word of a suggestion, with the spaces before it and punctuation stuck to it (as
 * assistant/suggest/text.py next_word). */
function nextWord(text) {
  const m = /^\s*\S+/.exec(text);
  return m ? m[0] : text;
}

/** The single edit that turns `before` into `after`: {pos, removed, inserted} (UTF-16). */
function diffEdit(before, after) {
  const max = Math.min(before.length, after.length);
  let p = 0;
  while (p < max && before.charCodeAt(p) === after.charCodeAt(p)) p++;
  let s = 0;
  while (s < max - p && before.charCodeAt(before.length - 1 - s) === after.charCodeAt(after.length - 1 - s)) s++;
  return { pos: p, removed: before.length - p - s, inserted: after.length - p - s };
}

/** Move range [start, end) through an edit; null if the edit touched it. */
function shiftRange(range, edit) {
  const editEnd = edit.pos + edit.removed;
  if (editEnd <= range.start) {
    const d = edit.inserted - edit.removed;
    return { start: range.start + d, end: range.end + d };
  }
  if (edit.pos >= range.end) return range;
  return null;
}

function formatCost(usd) {
  return `$${usd < 0.01 ? usd.toFixed(5) : usd.toFixed(4)}`;
}

// ---- the readout -------------------------------------------------------------------------------

class Readout {
  constructor() {
    this.conn = $("conn");
    this.source = $("source");
    this.latency = $("latency");
    this.cost = $("cost");
    this.provider = "";
    this.degraded = "";
  }

  connection(detail) {
    const { state } = detail;
    let label = state;
    let shown = state;
    if (state === "connected") {
      label = "connected";
    } else if (state === "reconnecting" && detail.delayMs !== undefined) {
      const secs = (detail.delayMs / 1000).toFixed(1);
      if (detail.refused) {
        shown = "refused";
        label = `refused or unreachable; retrying in ${secs} s`;
      } else {
        label = `disconnected; retrying in ${secs} s`;
      }
    } else if (state === "reconnecting" || state === "connecting") {
      label = `${state}…`;
    } else if (state === "closed" && detail.refused) {
      shown = "refused";
      label = "refused";
    }
    if (this.degraded && state === "connected") label += ` · ${this.degraded}`;
    this.conn.textContent = label;
    this.conn.dataset.state = shown;
    this.conn.title = this.provider;
  }

  noToken() {
    this.conn.textContent = "no token: open the URL that `assistant serve` printed";
    this.conn.dataset.state = "closed";
  }

  ready(f) {
    this.provider = [f.provider, f.model].filter(Boolean).join(" · ");
  }

  status(f) {
    this.degraded = f.state && f.state !== "ok" ? `${f.state.replace("_", " ")}, ${f.active || "offline"} answering` : "";
    this.connection({ state: "connected" });
  }

  suggestion(d) {
    this.source.textContent = d.source || "–";
    this.latency.textContent = typeof d.latency_ms === "number" ? `${Math.round(d.latency_ms)} ms` : "–";
    this.setCost(d.session_cost_usd);
  }

  setCost(usd) {
    if (typeof usd === "number") this.cost.textContent = formatCost(usd);
  }
}

// ---- the ghost-text editor ---------------------------------------------------------------------

class GhostEditor {
  constructor(client, readout) {
    this.client = client;
    this.readout = readout;
    this.ta = $("editor");
    this.layer = $("ghost-layer");
    this.before = $("ghost-before");
    this.ghostEl = $("ghost");
    this.after = $("ghost-after");
    this.acceptButton = $("accept-btn");
    this.escaped = false; // Esc with nothing to dismiss: a Tab right after moves the focus on
    this.ghost = null; // {id, text, at}: suggestion `text` shown at caret offset `at`
    this.pending = null; // {id, prefix, at}: the latest suggest request
    this.prevValue = this.ta.value;
    this.editListeners = [];
    this.programmatic = false;
    this.shown = [];
    window.__shown = this.shown;

    const ta = this.ta;
    ta.addEventListener("input", (e) => this.onInput(e));
    ta.addEventListener("keydown", (e) => this.onKeydown(e));
    ta.addEventListener("scroll", () => this.syncScroll());
    ta.addEventListener("compositionend", () => this.requestSuggestion());
    ta.addEventListener("blur", (e) => {
      if (e.relatedTarget !== this.acceptButton) this.dismiss();
    });
    // The touch Accept button: keep the focus (and the ghost) in the text while it is pressed.
    this.acceptButton.addEventListener("mousedown", (e) => e.preventDefault());
    this.acceptButton.addEventListener("click", () => this.acceptGhost());
    for (const type of ["keyup", "mouseup", "select", "selectionchange", "focus"]) {
      ta.addEventListener(type, () => this.checkCaret());
    }
    document.addEventListener("selectionchange", () => this.checkCaret());
    new ResizeObserver(() => this.syncGeometry()).observe(ta);

    client.addEventListener("suggestion", (e) => this.onSuggestion(e.detail));
    client.addEventListener("error", (e) => {
      if (this.pending && e.detail.id === this.pending.id) {
        const retry = e.detail.code === "resync" && !this.pending.resynced;
        this.pending = null;
        if (retry) {
          // The server's copy of the text was out of step: the client re-opens it; ask again.
          this.requestSuggestion(true);
          return;
        }
        this.readout.source.textContent = `error: ${e.detail.code}`;
      }
    });
    client.addEventListener("ready", () => {
      // Open the document (1.1) or warm (v1) where the writer will go on: the cursor, or the
      // end of a document just opened.
      const at = ta.selectionStart || ta.value.length;
      if (ta.value && !client.syncDocument(ta.value, at)) client.warm(ta.value.slice(0, at), ta.value.slice(at));
      if (document.activeElement === ta && ta.value) this.requestSuggestion();
    });
    this.syncGeometry();
  }

  onEdit(fn) {
    this.editListeners.push(fn);
  }

  // -- input --

  onInput(e) {
    const value = this.ta.value;
    const prev = this.prevValue;
    this.prevValue = value;
    const edit = diffEdit(prev, value);
    for (const fn of this.editListeners) fn(edit);

    if (e.isComposing) {
      this.dismiss();
      return;
    }
    const caret = this.ta.selectionStart;
    const g = this.ghost;
    const typedThrough =
      g &&
      !this.programmatic &&
      e.inputType === "insertText" &&
      typeof e.data === "string" &&
      e.data.length > 0 &&
      g.text.startsWith(e.data) &&
      this.collapsed() &&
      caret === g.at + e.data.length &&
      value === prev.slice(0, g.at) + e.data + prev.slice(g.at);
    if (typedThrough) {
      // The user typed what the ghost showed: keep the rest on screen while the server
      // confirms (its answer for the new request replaces this).
      const rest = g.text.slice(e.data.length);
      this.ghost = rest ? { id: g.id, text: rest, at: caret } : null;
      this.render();
    } else {
      this.ghost = null;
      this.render();
    }
    if (!this.programmatic) this.requestSuggestion();
    else this.cancelPending();
  }

  onKeydown(e) {
    if (e.isComposing) return;
    const escapedBefore = this.escaped;
    this.escaped = false;
    const modified = e.ctrlKey || e.altKey || e.metaKey;
    if (e.key === "Tab" && !e.shiftKey && !modified) {
      if (escapedBefore && !this.ghost) return; // Esc, Tab: the focus moves on
      e.preventDefault(); // Tab never leaves the text
      if (this.ghost && this.ghostValid()) this.acceptShown(this.ghost.text);
    } else if (e.key === "ArrowRight" && e.ctrlKey && !e.shiftKey && !e.altKey && !e.metaKey) {
      if (this.ghost && this.ghostValid()) {
        e.preventDefault();
        this.acceptShown(nextWord(this.ghost.text));
      }
    } else if (e.key === "Escape" && !modified) {
      // With a ghost, Esc dismisses it; with none on screen it also arms Esc-then-Tab.
      this.escaped = !this.ghost;
      if (this.ghost) e.preventDefault();
      if (this.ghost || this.pending) this.dismiss();
    }
  }

  /** A cursor move or a selection clears the ghost and stops its request. */
  checkCaret() {
    if (!this.ghost && !this.pending) return;
    const at = this.ghost ? this.ghost.at : this.pending.at;
    if (!this.collapsed() || this.ta.selectionStart !== at || this.ta.value !== this.prevValue) this.dismiss();
  }

  collapsed() {
    return this.ta.selectionStart === this.ta.selectionEnd;
  }

  ghostValid() {
    return this.collapsed() && this.ta.selectionStart === this.ghost.at && this.ta.value === this.prevValue;
  }

  // -- requests --

  /** Ask for a suggestion at the cursor. A new suggest supersedes the previous one on the
   * server by itself, so no cancel frame is spent on it. */
  requestSuggestion(resynced = false) {
    const value = this.ta.value;
    const at = this.ta.selectionStart;
    const prefix = value.slice(0, at);
    if (!this.client.connected || !this.collapsed() || !prefix.trim()) {
      this.cancelPending();
      return;
    }
    // 1.1: only the change since the last request goes out; v1: the text around the cursor.
    const id = this.client.suggestAt(value, at);
    this.pending = { id, prefix, at, resynced };
  }

  cancelPending() {
    if (this.pending) {
      this.client.cancel(this.pending.id);
      this.pending = null;
    }
  }

  dismiss() {
    this.cancelPending();
    if (this.ghost) {
      this.ghost = null;
      this.render();
    }
  }

  onSuggestion(d) {
    const p = this.pending;
    // The client surfaces only its latest id; check again against what is on screen.
    if (!p || d.id !== p.id || d.id !== this.client.latestSuggestId) return;
    const value = this.ta.value;
    if (!this.collapsed() || this.ta.selectionStart !== p.at || value.slice(0, p.at) !== p.prefix) return;
    if (d.final) {
      this.pending = null;
      this.readout.suggestion(d);
    } else if (this.ghost && this.ghost.text.startsWith(d.text)) {
      return; // the ghost on screen already shows this much
    }
    this.ghost = d.text ? { id: d.id, text: d.text, at: p.at } : null;
    this.render();
    if (this.ghost) {
      this.shown.push({
        id: d.id,
        latest: this.client.latestSuggestId,
        final: d.final,
        source: d.source,
        text: d.text,
        at: p.at,
        requestPrefix: p.prefix,
        before: value.slice(0, this.ta.selectionStart),
        caret: this.ta.selectionStart,
        t: performance.now(),
      });
      if (this.shown.length > SHOWN_LOG_MAX) this.shown.splice(0, this.shown.length - SHOWN_LOG_MAX);
    }
  }

  /** Accept `wanted` (the ghost or its next word), no more of it than is on screen. With the
   * ghost out of view nothing is inserted: the view goes back to it. */
  acceptShown(wanted) {
    const shown = this.shownLength();
    if (shown === 0) {
      this.render();
      return;
    }
    const text = wanted.length <= shown ? wanted : this.ghost.text.slice(0, shown);
    this.client.accept(this.ghost.id, text.length);
    // Typed through like a key: the rest of the ghost stays on screen.
    this.insertText(text, false);
  }

  /** Accept the whole ghost if it is on screen (the touch Accept button, the tests). */
  acceptGhost() {
    if (this.ghost && this.ghostValid()) this.acceptShown(this.ghost.text);
  }

  /** How many characters of the ghost are on screen: all, or those on the rows in view, cut
   * back to a word when one runs off. Characters follow the rows down, so the visible ones are a
   * prefix; a binary search finds where it ends. */
  shownLength() {
    const node = this.ghostEl.firstChild;
    if (!node || !this.ghost) return 0;
    const text = node.data;
    const box = this.visibleBox();
    const range = document.createRange();
    const onScreen = (i) => {
      range.setStart(node, i);
      range.setEnd(node, i + 1);
      const rects = range.getClientRects();
      if (!rects.length) return true; // a space swallowed at a wrap
      const r = rects[rects.length - 1];
      return r.top >= box.top - 0.5 && r.bottom <= box.bottom + 0.5;
    };
    if (!onScreen(0)) return 0;
    let low = 1;
    let high = text.length;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (onScreen(middle - 1)) low = middle;
      else high = middle - 1;
    }
    if (low < text.length && !/\s/.test(text[low])) {
      const cut = text.lastIndexOf(" ", low - 1);
      if (cut > 0) low = cut;
    }
    return low;
  }

  /** The part of the page where text can be seen: the textarea's box, within the window. */
  visibleBox() {
    const r = this.ta.getBoundingClientRect();
    return { top: Math.max(r.top, 0), bottom: Math.min(r.bottom, window.innerHeight) };
  }

  /** Scroll the textarea so the whole ghost shows (the caret's row with it), giving the text
   * room below while the ghost reaches past its end; as much as fits when it is taller. The
   * room only grows while a ghost shows (it goes with the ghost): changing it relays out the
   * whole text, which on a 100 KB document nearly doubled the time a typed-through key took. */
  placeGhost() {
    this.syncScroll();
    const rects = this.ghostEl.getClientRects();
    if (!rects.length) return;
    const first = rects[0];
    const last = rects[rects.length - 1];
    const box = this.visibleBox();
    const over = last.bottom - box.bottom;
    const room = first.top - box.top;
    // Only when the ghost starts in view or on the row just below it (where the text ran out
    // of room): a writer who scrolled away to read is not pulled back by a ghost.
    const justBelow = first.top <= box.bottom + first.height;
    if (over <= 0.5 || room < 0 || !justBelow) return;
    const cs = getComputedStyle(this.ta);
    const padding = parseFloat(cs.paddingBottom) || 0;
    // Never so much that a border-box textarea would grow to fit its padding.
    const most = this.ta.clientHeight - (parseFloat(cs.paddingTop) || 0) - 1;
    const wanted = Math.min(padding + Math.ceil(over), most);
    if (wanted > padding) {
      this.ta.style.paddingBottom = `${wanted}px`;
      this.layer.style.paddingBottom = `${wanted}px`;
    }
    this.ta.scrollTop += Math.ceil(Math.min(over, room));
    this.syncScroll();
  }

  /** Insert at the selection through the browser's editing (so Ctrl+Z undoes it). */
  insertText(text, programmatic) {
    const ta = this.ta;
    ta.focus();
    this.programmatic = programmatic;
    let ok = false;
    try {
      ok = document.execCommand("insertText", false, text);
    } catch {
      ok = false;
    }
    if (!ok) {
      ta.setRangeText(text, ta.selectionStart, ta.selectionEnd, "end");
      this.onInput({ inputType: "insertReplacementText", data: null, isComposing: false });
    }
    this.programmatic = false;
  }

  /** Replace [start, end) with `text`, as an undoable edit that makes no suggestion request. */
  replaceRange(start, end, text) {
    this.ta.focus();
    this.ta.setSelectionRange(start, end);
    this.insertText(text, true);
  }

  // -- drawing --

  render() {
    const g = this.ghost;
    const value = this.ta.value;
    if (!g) {
      this.ghostEl.textContent = "";
      this.before.textContent = "";
      this.after.textContent = "";
      this.ta.style.paddingBottom = "";
      this.layer.style.paddingBottom = "";
      this.acceptButton.hidden = true;
      return;
    }
    this.before.textContent = value.slice(0, g.at);
    this.ghostEl.textContent = g.text;
    this.after.textContent = value.slice(g.at);
    this.syncScroll();
    this.placeGhost();
    // The browser scrolls the caret into view after an input event has been handled, which
    // can push a ghost shown while handling it back below the edge: place it again then.
    requestAnimationFrame(() => {
      if (this.ghost === g) this.placeGhost();
    });
    this.acceptButton.hidden = false;
  }

  syncScroll() {
    this.layer.scrollTop = this.ta.scrollTop;
    this.layer.scrollLeft = this.ta.scrollLeft;
  }

  /** Match the layer's text box to the textarea's (its scrollbar narrows the text). */
  syncGeometry() {
    const cs = getComputedStyle(this.ta);
    const scrollbar = this.ta.offsetWidth - this.ta.clientWidth;
    this.layer.style.paddingRight = `${parseFloat(cs.paddingRight) + scrollbar}px`;
    this.layer.style.height = `${this.ta.offsetHeight}px`;
    this.syncScroll();
  }
}

// ---- deep review -------------------------------------------------------------------------------

class ReviewPanel {
  constructor(client, editor, readout) {
    this.client = client;
    this.editor = editor;
    this.readout = readout;
    this.button = $("review-btn");
    this.stopButton = $("review-cancel");
    this.status = $("review-status");
    this.list = $("findings");
    this.reviewId = null;
    this.reviewed = ""; // the text as sent
    this.editsSince = []; // edits since it was sent, to place findings that arrive later
    this.findings = []; // {el, index, quote, replacement, range | null, state}
    this.streamed = 0;

    this.button.addEventListener("click", () => this.start());
    this.stopButton.addEventListener("click", () => this.client.cancelReview(this.reviewId));
    editor.onEdit((edit) => this.onEdit(edit));
    client.addEventListener("review-delta", (e) => this.onDelta(e.detail));
    client.addEventListener("finding", (e) => this.onFinding(e.detail));
    client.addEventListener("finding-retracted", (e) => this.onRetracted(e.detail));
    client.addEventListener("review-done", (e) => this.onDone(e.detail));
    client.addEventListener("cancelled", (e) => this.onEnded(e.detail, null));
    client.addEventListener("error", (e) => this.onEnded(e.detail, e.detail.message || e.detail.code));
  }

  start() {
    if (!this.client.connected) {
      this.setStatus("Not connected.", true);
      return;
    }
    if (this.reviewId !== null) this.client.cancelReview(this.reviewId);
    const text = this.editor.ta.value;
    if (!text.trim()) {
      this.setStatus("Nothing to review yet.", false);
      return;
    }
    this.list.replaceChildren();
    this.findings = [];
    this.reviewed = text;
    this.editsSince = [];
    this.streamed = 0;
    this.reviewId = this.client.review(text);
    this.stopButton.hidden = false;
    this.setStatus("Reviewing…", false);
  }

  running(id) {
    return this.reviewId !== null && id === this.reviewId;
  }

  onDelta(d) {
    if (!this.running(d.id)) return;
    this.streamed += d.text.length;
    this.setStatus(`Reviewing… ${this.streamed} characters`, false);
  }

  onFinding(f) {
    if (!this.running(f.id)) return;
    const quote = String(f.quote ?? "");
    let start = cpToUtf16(this.reviewed, f.start | 0);
    let end = cpToUtf16(this.reviewed, f.end | 0);
    if (this.reviewed.slice(start, end) !== quote) {
      start = this.reviewed.indexOf(quote);
      end = start + quote.length;
    }
    let range = start >= 0 && quote ? { start, end } : null;
    for (const edit of this.editsSince) if (range) range = shiftRange(range, edit);
    const item = { index: f.index, quote, replacement: String(f.replacement ?? ""), range, state: "open" };
    item.el = this.renderFinding(f, item);
    this.findings.push(item);
    if (!range) this.markStale(item);
  }

  /** Sonnet withdrew a finding shown earlier (its own follows): it leaves the list and can no
   * longer be applied. One the writer already applied stays, saying so. */
  onRetracted(d) {
    if (!this.running(d.id)) return;
    const item = this.findings.find((it) => it.index === d.index);
    if (!item) return;
    if (item.state === "applied") {
      item.el.classList.add("retracted");
      this.note(item, "Applied, then withdrawn by the review (Ctrl+Z undoes it).");
      return;
    }
    item.state = "retracted";
    item.range = null;
    this.disable(item);
    item.el.remove();
    this.findings.splice(this.findings.indexOf(item), 1);
  }

  onDone(d) {
    if (!this.running(d.id)) return;
    this.finish();
    const secs = typeof d.latency_ms === "number" ? ` · ${(d.latency_ms / 1000).toFixed(1)} s` : "";
    const cost = typeof d.cost_usd === "number" ? ` · ${formatCost(d.cost_usd)}` : "";
    const n = d.findings ?? this.findings.length;
    this.setStatus(`${n} finding${n === 1 ? "" : "s"}${cost}${secs}`, false);
    this.readout.setCost(d.session_cost_usd);
  }

  onEnded(d, message) {
    if (!this.running(d.id)) return;
    this.finish();
    if (message) this.setStatus(`Review failed: ${message}`, true);
    else if (d.reason === "client") this.setStatus("Review stopped.", false);
    else this.setStatus(`Review ended (${d.reason || "cancelled"}).`, true);
  }

  finish() {
    this.reviewId = null;
    this.stopButton.hidden = true;
  }

  onEdit(edit) {
    if (this.reviewId !== null) this.editsSince.push(edit);
    for (const item of this.findings) {
      if (item.state !== "open" || !item.range) continue;
      item.range = shiftRange(item.range, edit);
      if (!item.range) this.markStale(item);
    }
  }

  apply(item) {
    if (item.state !== "open") return;
    const ta = this.editor.ta;
    const r = item.range;
    if (!r || ta.value.slice(r.start, r.end) !== item.quote) {
      this.markStale(item);
      this.note(item, "Not applied: the text here changed since the review. Review again.");
      return;
    }
    item.state = "applied";
    this.editor.replaceRange(r.start, r.end, item.replacement);
    item.el.classList.add("applied");
    this.note(item, "Applied.");
    this.disable(item);
  }

  skip(item) {
    if (item.state !== "open") return;
    item.state = "skipped";
    item.el.classList.add("skipped");
    this.note(item, "Skipped.");
    this.disable(item);
  }

  markStale(item) {
    if (item.state !== "open") return;
    item.range = null;
    item.el.classList.add("stale");
    this.note(item, "Stale: the text here changed since the review.");
  }

  note(item, text) {
    item.el.querySelector(".note").textContent = text;
  }

  disable(item) {
    for (const b of item.el.querySelectorAll("button")) b.disabled = true;
  }

  renderFinding(f, item) {
    const li = document.createElement("li");
    li.className = "finding";
    li.dataset.index = String(item.index);
    li.dataset.severity = ["high", "medium", "low"].includes(f.severity) ? f.severity : "low";
    const problem = document.createElement("p");
    problem.className = "problem";
    problem.textContent = String(f.problem ?? "");
    const change = document.createElement("p");
    change.className = "change";
    const del = document.createElement("del");
    del.textContent = item.quote;
    const ins = document.createElement("ins");
    ins.textContent = item.replacement;
    change.append(del, " → ", ins);
    const actions = document.createElement("div");
    actions.className = "actions";
    const apply = document.createElement("button");
    apply.type = "button";
    apply.className = "apply primary";
    apply.textContent = "Apply";
    apply.addEventListener("click", () => this.apply(item));
    const skip = document.createElement("button");
    skip.type = "button";
    skip.className = "skip";
    skip.textContent = "Skip";
    skip.addEventListener("click", () => this.skip(item));
    const note = document.createElement("span");
    note.className = "note";
    actions.append(apply, skip, note);
    li.append(problem, change, actions);
    this.list.append(li);
    return li;
  }

  setStatus(text, bad) {
    this.status.textContent = text;
    this.status.classList.toggle("bad", bad);
  }
}

// ---- the draft: kept in this browser, so a reload, a crash or a closed tab loses no text --------
//
// Each tab writes its text (and caret) to localStorage under its own key, 200 ms after the last
// edit and at once when the page is hidden or left. A reload finds its tab's key again (the tab's
// id lives in sessionStorage). A new tab takes over the newest draft whose tab is gone, so the
// text of a closed (or crashed) tab comes back in the next one, and a second tab opened beside
// the first starts empty. An open tab holds a Web Lock named after it, which the browser lets go
// when the tab goes, however it goes; where there are no Web Locks (a page that is not a secure
// context), a tab marks its draft alive every few seconds instead. Nothing leaves the browser.
// If the browser will not keep the text (storage full or turned off), the status says so and
// leaving the page asks first.

const DRAFT_PREFIX = "assistant.draft.";
const ALIVE_PREFIX = "assistant.alive.";
const LOCK_PREFIX = "assistant.tab.";
const TAB_KEY = "assistant.tab";
const DRAFTS_KEPT = 10;
const DRAFT_SAVE_MS = 200;
const ALIVE_EVERY_MS = 5000;
const GONE_AFTER_MS = 60000; // a hidden tab's timers may run once a minute

class Draft {
  constructor(ta, statusEl) {
    this.ta = ta;
    this.status = statusEl;
    this.timer = null;
    this.unsaved = false; // the text on screen is not in the browser's storage
    this.pruned = false; // drafts over DRAFTS_KEPT dropped, once, when this tab's is first kept
    this.storage = null;
    try {
      let tab = sessionStorage.getItem(TAB_KEY);
      if (!tab) {
        tab = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
        sessionStorage.setItem(TAB_KEY, tab);
      }
      this.tab = tab;
      this.storage = window.localStorage;
    } catch (err) {
      this.fail(err);
    }
    this.locks = this.tab && navigator.locks ? navigator.locks : null;
    if (this.locks) this.locks.request(LOCK_PREFIX + this.tab, () => new Promise(() => {}));
    window.addEventListener("pagehide", () => this.save());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") this.save();
    });
    window.addEventListener("beforeunload", (e) => {
      if (this.unsaved && this.ta.value) e.preventDefault(); // the browser asks first
    });
    if (!this.locks) setInterval(() => this.markAlive(), ALIVE_EVERY_MS);
  }

  /** This tab's draft (after a reload), or else the newest one whose tab is gone, put into the
   * empty editor; true if there was one. */
  async restore() {
    if (!this.storage || this.ta.value) return false;
    let from = this.tab;
    let draft = this.read(this.tab);
    if (!draft) {
      const open = await this.openTabs();
      if (this.ta.value) return false; // the writer began while the browser answered
      const gone = this.tabs()
        .filter((t) => t !== this.tab && !open.has(t))
        .map((t) => [t, this.read(t)])
        .filter(([, d]) => d)
        .sort((a, b) => b[1].saved - a[1].saved);
      if (!gone.length) return false;
      [from, draft] = gone[0];
    }
    this.ta.value = draft.text;
    const at = Math.min(Math.max(0, Number(draft.cursor) || 0), draft.text.length);
    this.ta.setSelectionRange(at, at);
    if (from !== this.tab) {
      this.pruned = true; // (not by this save: once the draft it came from is gone, below)
      this.save(); // this tab's from now on
      this.forget(DRAFT_PREFIX + from);
      this.prune();
    }
    this.say(`Draft restored from this browser (${new Date(draft.saved).toLocaleTimeString()})`);
    return true;
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.save(), DRAFT_SAVE_MS);
  }

  save() {
    clearTimeout(this.timer);
    this.timer = null;
    if (!this.storage) {
      this.unsaved = true;
      return;
    }
    const text = this.ta.value;
    try {
      if (text) {
        const record = { text, cursor: this.ta.selectionStart, saved: Date.now() };
        this.storage.setItem(DRAFT_PREFIX + this.tab, JSON.stringify(record));
        if (!this.locks) this.storage.setItem(ALIVE_PREFIX + this.tab, String(Date.now()));
        if (!this.pruned) this.prune(); // (only a new tab's first draft adds one to the count)
      } else {
        this.storage.removeItem(DRAFT_PREFIX + this.tab);
      }
      if (this.unsaved) this.say("Saved in this browser");
      this.unsaved = false;
    } catch (err) {
      this.fail(err);
    }
  }

  /** The tabs that are open now (their Web Lock is held, or they marked themselves alive). */
  async openTabs() {
    if (this.locks) {
      try {
        const { held } = await this.locks.query();
        const names = held.map((l) => l.name).filter((n) => n.startsWith(LOCK_PREFIX));
        return new Set(names.map((n) => n.slice(LOCK_PREFIX.length)));
      } catch {
        // (fall back on the marks)
      }
    }
    const now = Date.now();
    const marked = (t) => Number(this.storage.getItem(ALIVE_PREFIX + t) || 0);
    return new Set(this.tabs().filter((t) => now - marked(t) <= GONE_AFTER_MS));
  }

  markAlive() {
    if (!this.storage || !this.ta.value) return;
    try {
      this.storage.setItem(ALIVE_PREFIX + this.tab, String(Date.now()));
    } catch {
      // (a full storage is reported by the next save)
    }
  }

  read(tab) {
    try {
      const d = JSON.parse(this.storage.getItem(DRAFT_PREFIX + tab) || "null");
      return d && typeof d.text === "string" && d.text ? d : null;
    } catch {
      return null;
    }
  }

  tabs() {
    const tabs = [];
    for (let i = 0; i < this.storage.length; i++) {
      const k = this.storage.key(i);
      if (k && k.startsWith(DRAFT_PREFIX)) tabs.push(k.slice(DRAFT_PREFIX.length));
    }
    return tabs;
  }

  /** At most DRAFTS_KEPT drafts in the browser: the newest. It reads every draft, so it runs
   * once, not on every save while the writer types. */
  prune() {
    this.pruned = true;
    const drafts = this.tabs()
      .map((t) => [t, (this.read(t) || { saved: 0 }).saved])
      .sort((a, b) => b[1] - a[1]);
    for (const [t] of drafts.slice(DRAFTS_KEPT)) {
      this.forget(DRAFT_PREFIX + t);
      this.forget(ALIVE_PREFIX + t);
    }
  }

  forget(key) {
    try {
      if (this.storage) this.storage.removeItem(key);
    } catch {
      // (nothing to do: a key left behind loses no text)
    }
  }

  fail(err) {
    this.unsaved = true;
    const why = err && err.name === "QuotaExceededError" ? "storage full" : "storage unavailable";
    this.say(`Not saved in this browser (${why}): keep this tab open, or copy your text`, true);
  }

  say(text, bad = false) {
    this.status.textContent = text;
    this.status.classList.toggle("bad", bad);
  }
}

// ---- wiring ------------------------------------------------------------------------------------

async function main() {
  const readout = new Readout();
  const draft = new Draft($("editor"), $("draft-status"));
  await draft.restore(); // before the editor reads its text, and before the server is told of it
  const token = tokenFromFragment(TOKEN_KEY);
  const client = new AssistantClient({ url: wsUrl(), token: token || "", reconnect: true });
  client.addEventListener("state", (e) => readout.connection(e.detail));
  client.addEventListener("ready", (e) => readout.ready(e.detail));
  client.addEventListener("status", (e) => readout.status(e.detail));
  const editor = new GhostEditor(client, readout);
  editor.onEdit(() => draft.schedule());
  const review = new ReviewPanel(client, editor, readout);
  const checks = new CheckMarks(client, editor, readout, { cpToUtf16, shiftRange });
  window.__assistant = { client, editor, review, checks, draft };
  if (!token) {
    readout.noToken();
    return;
  }
  client.connect();
  editor.ta.focus();
}

main();
