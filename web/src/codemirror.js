// The assistant in a CodeMirror 6 editor: ghost text, keys, type-through and review findings.
//
//   import { assistant, startReview } from "@inline-assistant/editor/codemirror";
//   new EditorView({ extensions: [basicSetup, assistant({ client })], parent });
//
// The ghost is a widget decoration at the cursor, held in a state field so that it follows the
// document exactly: any change other than typing the ghost's own next characters, any cursor
// move and any IME composition clears it. An accept (Tab: all, Ctrl+Right: one word) is one
// transaction isolated in the history, so Ctrl+Z takes back exactly the accept. Review findings
// become @codemirror/lint diagnostics whose action applies the fix, only while the quoted text
// is still there.

import { isolateHistory } from "@codemirror/commands";
import { setDiagnostics } from "@codemirror/lint";
import { Annotation, Facet, Prec, StateEffect, StateField } from "@codemirror/state";
import { Decoration, EditorView, ViewPlugin, WidgetType, keymap } from "@codemirror/view";
import { ReviewSession, SuggestionSession } from "./session.js";

/** @typedef {{id: number, text: string, at: number}} Ghost */

/** Sets (or, with null, clears) the ghost. */
export const setGhost = StateEffect.define();

/** The options given to assistant() (the last one wins if it is added twice). */
const optionsFacet = Facet.define({ combine: (values) => values[values.length - 1] });

/** Marks the assistant's own non-typing edits (an applied fix): they ask for no suggestion. */
const assistantEdit = Annotation.define();

class GhostWidget extends WidgetType {
  constructor(text) {
    super();
    this.text = text;
  }

  eq(other) {
    return other.text === this.text;
  }

  toDOM() {
    const span = document.createElement("span");
    span.className = "cm-assistant-ghost";
    span.setAttribute("aria-hidden", "true");
    span.textContent = this.text;
    return span;
  }

  ignoreEvent() {
    return false;
  }
}

/** The ghost after `tr`: what is left of it when the writer typed its next characters at its
 * place (and nothing else), else null. */
function typedThrough(ghost, tr) {
  if (tr.isUserEvent("input.type.compose")) return null;
  let only = null;
  let count = 0;
  tr.changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
    count += 1;
    only = { fromA, toA, text: inserted.toString() };
  });
  if (count !== 1 || only.fromA !== ghost.at || only.toA !== ghost.at) return null;
  if (!only.text || !ghost.text.startsWith(only.text)) return null;
  const sel = tr.newSelection.main;
  if (!sel.empty || sel.head !== ghost.at + only.text.length) return null;
  const rest = ghost.text.slice(only.text.length);
  return rest ? { id: ghost.id, text: rest, at: sel.head } : null;
}

/** The ghost on screen, as state: null or {id, text, at}. */
export const ghostField = StateField.define({
  create: () => null,
  update(ghost, tr) {
    for (const e of tr.effects) if (e.is(setGhost)) return e.value;
    if (!ghost) return null;
    if (tr.docChanged) return typedThrough(ghost, tr);
    const sel = tr.selection ? tr.selection.main : null;
    if (sel && (!sel.empty || sel.head !== ghost.at)) return null;
    return ghost;
  },
  provide: (field) =>
    EditorView.decorations.from(field, (g) =>
      g ? Decoration.set([Decoration.widget({ widget: new GhostWidget(g.text), side: 1 }).range(g.at)]) : Decoration.none,
    ),
});

/** The ghost, if it is still for the cursor as it is. */
function liveGhost(state) {
  const g = state.field(ghostField, false);
  const sel = state.selection.main;
  return g && sel.empty && sel.head === g.at ? g : null;
}

/** The user events after which the writer may want a suggestion (typing, paste, deleting,
 * undo/redo, an accept). */
const WRITING = ["input", "delete", "undo", "redo"];

const SEVERITY = { high: "error", medium: "warning", low: "info" };

class AssistantPlugin {
  constructor(view, options) {
    this.view = view;
    this.options = options;
    this.docCache = { doc: null, text: "" };
    this.findings = []; // {index, from, to, quote, replacement, severity, message}
    this.sinceReview = null; // ChangeSet from the reviewed text to the document now
    this.session = new SuggestionSession(options.client, {
      snapshot: () => this.snapshot(),
      show: (ghost) => this.view.dispatch({ effects: setGhost.of(ghost) }),
      composing: () => this.view.composing || this.view.compositionStarted,
      focused: () => this.view.hasFocus,
      current: () => this.view.state.field(ghostField, false),
    });
    this.review = new ReviewSession(options.client, {
      finding: (f, range) => this.addFinding(f, range),
      retracted: (index) => this.setFindings(this.findings.filter((it) => it.index !== index)),
      status: (text, ended) => options.onReviewStatus && options.onReviewStatus(text, ended),
    });
  }

  text(doc) {
    if (this.docCache.doc !== doc) this.docCache = { doc, text: doc.toString() };
    return this.docCache.text;
  }

  snapshot() {
    const { state } = this.view;
    const sel = state.selection.main;
    if (!sel.empty) return null;
    return { text: this.text(state.doc), cursor: sel.head, key: state.doc, at: sel.head };
  }

  update(update) {
    if (update.docChanged) {
      if (this.sinceReview) this.sinceReview = this.sinceReview.compose(update.changes);
      this.mapFindings(update.changes);
    }
    if (this.view.composing) {
      this.session.cancel();
      return;
    }
    const typed = update.transactions.some(
      (tr) => tr.docChanged && !tr.annotation(assistantEdit) && WRITING.some((event) => tr.isUserEvent(event)),
    );
    if (typed) this.session.request();
    else if (update.docChanged || update.selectionSet) this.session.cancelIfMoved();
  }

  destroy() {
    this.session.destroy();
    this.review.destroy();
  }

  // ---- keys ----------------------------------------------------------------------------

  /** Insert `text` of the ghost at its place as one undo step. */
  accept(part) {
    const ghost = liveGhost(this.view.state);
    if (!ghost) return false;
    const { text, rest } = this.session.take(ghost, part);
    this.view.dispatch({
      changes: { from: ghost.at, insert: text },
      selection: { anchor: ghost.at + text.length },
      effects: setGhost.of(rest ? { id: ghost.id, text: rest, at: ghost.at + text.length } : null),
      annotations: isolateHistory.of("full"),
      userEvent: "input.complete",
      scrollIntoView: true,
    });
    return true;
  }

  dismiss() {
    const shown = this.view.state.field(ghostField, false);
    this.session.cancel();
    if (shown) this.view.dispatch({ effects: setGhost.of(null) });
    // Esc is ours only when a ghost was on screen; otherwise it goes on to the page.
    return !!shown;
  }

  // ---- review findings -------------------------------------------------------------------

  startReview() {
    this.sinceReview = null;
    this.setFindings([]);
    const text = this.text(this.view.state.doc);
    const id = this.review.start(text);
    if (id !== null) this.sinceReview = this.view.state.changes([]);
    return id;
  }

  addFinding(f, range) {
    if (!range || !this.sinceReview) return;
    const changes = this.sinceReview;
    if (changes.touchesRange(range.from, range.to)) return; // edited since: stale
    const from = changes.mapPos(range.from, 1);
    const to = changes.mapPos(range.to, -1);
    if (this.view.state.sliceDoc(from, to) !== range.quote) return;
    const finding = {
      index: f.index,
      from,
      to,
      quote: range.quote,
      replacement: String(f.replacement ?? ""),
      severity: SEVERITY[f.severity] || "info",
      message: String(f.problem ?? ""),
    };
    this.setFindings([...this.findings.filter((it) => it.index !== f.index), finding]);
  }

  /** Findings follow edits around them; one whose quoted text was edited is dropped (stale). */
  mapFindings(changes) {
    if (!this.findings.length) return;
    const kept = [];
    for (const it of this.findings) {
      if (changes.touchesRange(it.from, it.to)) continue;
      kept.push({ ...it, from: changes.mapPos(it.from, 1), to: changes.mapPos(it.to, -1) });
    }
    const dropped = kept.length !== this.findings.length;
    this.findings = kept;
    // the lint state maps its own copies; only a drop must be told (outside this update)
    if (dropped) queueMicrotask(() => this.setFindings(this.findings));
  }

  setFindings(findings) {
    this.findings = findings;
    const diagnostics = findings.map((it) => ({
      from: it.from,
      to: it.to,
      severity: it.severity,
      source: "review",
      message: it.replacement ? `${it.message} → ${it.replacement}` : it.message,
      actions: [{ name: "Apply", apply: () => this.applyFinding(it.index) }],
    }));
    this.view.dispatch(setDiagnostics(this.view.state, diagnostics));
  }

  /** Apply finding `index`'s fix as one undo step, only if its quoted text is still there. */
  applyFinding(index) {
    const it = this.findings.find((f) => f.index === index);
    if (!it || this.view.state.sliceDoc(it.from, it.to) !== it.quote) return false;
    this.findings = this.findings.filter((f) => f !== it);
    this.view.dispatch({
      changes: { from: it.from, to: it.to, insert: it.replacement },
      annotations: [isolateHistory.of("full"), assistantEdit.of(true)],
      userEvent: "input.fix",
    });
    this.setFindings(this.findings);
    return true;
  }
}

function pluginOf(view) {
  return view.plugin(assistantPlugin);
}

const assistantPlugin = ViewPlugin.define((view) => new AssistantPlugin(view, view.state.facet(optionsFacet)), {
  eventHandlers: {
    compositionstart() {
      this.dismiss();
    },
    compositionend() {
      // CodeMirror applies the composed text after this event: ask once it has.
      setTimeout(() => {
        if (!this.view.composing) this.session.request();
      }, 0);
    },
    blur() {
      this.dismiss();
    },
  },
});

const theme = EditorView.baseTheme({
  ".cm-assistant-ghost": { color: "#8a8f98", pointerEvents: "none" },
});

/**
 * The CodeMirror 6 extension: ghost-text suggestions (Tab accepts, Ctrl+Right accepts a word,
 * Esc dismisses, typing the ghost uses it up) and review findings as lint diagnostics.
 *
 * @param {object} options
 * @param {import("./client.js").AssistantClient} options.client  a connected (or connecting) client
 * @param {(text: string, ended: boolean) => void} [options.onReviewStatus]  review progress
 * @returns {import("@codemirror/state").Extension}
 */
export function assistant(options) {
  if (!options || !options.client) throw new TypeError("assistant(): options.client is required");
  return [
    optionsFacet.of(options),
    ghostField,
    assistantPlugin,
    theme,
    Prec.highest(
      keymap.of([
        { key: "Tab", run: (view) => pluginOf(view)?.accept("all") ?? false },
        { key: "Ctrl-ArrowRight", mac: "Alt-ArrowRight", run: (view) => pluginOf(view)?.accept("word") ?? false },
        { key: "Escape", run: (view) => pluginOf(view)?.dismiss() ?? false },
      ]),
    ),
  ];
}

/** Review the whole document; findings arrive as lint diagnostics. Returns the review id. */
export function startReview(view) {
  return pluginOf(view)?.startReview() ?? null;
}

/** The review findings in `view`: [{index, from, to, quote, replacement, severity, message}]. */
export function reviewFindings(view) {
  return pluginOf(view)?.findings ?? [];
}

/** The ghost on screen in `view`, or null. */
export function currentGhost(view) {
  return view.state.field(ghostField, false) || null;
}

/** The log of ghosts shown in `view` (what each answered, what was on screen), for tests. */
export function suggestionLog(view) {
  return pluginOf(view)?.session.shown ?? [];
}
