// The assistant in a ProseMirror editor (and so in TipTap): ghost text, keys, type-through and
// review findings, through decorations and a keymap.
//
//   import { assistantPlugins } from "@inline-assistant/editor/prosemirror";
//   EditorState.create({ schema, plugins: [...assistantPlugins({ client }), history(), keymap(baseKeymap)] });
//
// The server sees the document as one string: textblocks joined by a blank line ("\n\n"), a
// hard break as "\n", any other inline leaf as U+FFFC. Inside a textblock one character is one
// ProseMirror position, so a text offset maps to a position (and back) through the block it
// falls in, across nodes and paragraphs. An accept is one history event (closed before and
// after), an applied fix too; nothing is shown mid-IME-composition or for a document since
// changed.

import { closeHistory } from "prosemirror-history";
import { keymap } from "prosemirror-keymap";
import { Plugin, PluginKey, TextSelection } from "prosemirror-state";
import { Mapping } from "prosemirror-transform";
import { Decoration, DecorationSet } from "prosemirror-view";
import { ReviewSession, SuggestionSession } from "./session.js";

const BLOCK_SEPARATOR = "\n\n";
const OBJECT = "\uFFFC";

/**
 * The document as text, with the textblocks' places: block i holds text[off, off + size) at
 * positions [start, start + size).
 * @typedef {{text: string, blocks: {off: number, start: number, size: number}[]}} Flat
 */

/** @param {import("prosemirror-model").Node} node an inline leaf */
function leafText(node) {
  if (node.type.name === "hard_break") return "\n";
  const spec = node.type.spec.leafText;
  const text = spec ? spec(node) : OBJECT;
  return text.length === node.nodeSize ? text : OBJECT;
}

const FLAT = new WeakMap();

/** @param {import("prosemirror-model").Node} doc @returns {Flat} */
export function flatten(doc) {
  let flat = FLAT.get(doc);
  if (flat) return flat;
  const parts = [];
  const blocks = [];
  let off = 0;
  doc.descendants((node, pos) => {
    if (!node.isTextblock) return true;
    if (blocks.length) {
      parts.push(BLOCK_SEPARATOR);
      off += BLOCK_SEPARATOR.length;
    }
    let text = "";
    node.forEach((child) => {
      text += child.isText ? child.text : leafText(child);
    });
    parts.push(text);
    blocks.push({ off, start: pos + 1, size: node.content.size });
    off += text.length;
    return false;
  });
  flat = { text: parts.join(""), blocks };
  FLAT.set(doc, flat);
  return flat;
}

/** The text offset of position `pos`, or null outside every textblock. */
export function offsetAt(flat, pos) {
  for (const b of flat.blocks) if (pos >= b.start && pos <= b.start + b.size) return b.off + (pos - b.start);
  return null;
}

/** The position of text offset `off`, or null in a separator between blocks. */
export function posAt(flat, off) {
  for (const b of flat.blocks) if (off >= b.off && off <= b.off + b.size) return b.start + (off - b.off);
  return null;
}

/** A transaction that inserts `text` at `pos`: a blank line starts a new textblock, a single
 * newline is a hard break where the schema has one. */
function insertProse(tr, pos, text) {
  const breakType = tr.doc.type.schema.nodes.hard_break;
  text.split(BLOCK_SEPARATOR).forEach((para, i) => {
    if (i > 0) {
      tr.split(pos); // closes this textblock and opens the next: two positions on
      pos += 2;
    }
    para.split("\n").forEach((line, j) => {
      if (j > 0) {
        if (breakType) {
          tr.insert(pos, breakType.create());
          pos += 1;
        } else {
          tr.insertText("\n", pos);
          pos += 1;
        }
      }
      if (line) {
        tr.insertText(line, pos);
        pos += line.length;
      }
    });
  });
  return pos;
}

export const assistantKey = new PluginKey("assistant");

const SEVERITIES = ["high", "medium", "low"];

/** Ctrl+Right moves between desktops on a Mac, where Alt+Right is the word key. */
const MAC = typeof navigator !== "undefined" && /Mac|iP(hone|[oa]d)/.test(navigator.platform);

/** What is left of the ghost after `tr` when the writer typed its next characters at its place
 * (and nothing else), else null. */
function typedThrough(ghost, tr, selection) {
  if (tr.getMeta("composition") !== undefined || tr.steps.length !== 1) return null;
  const step = tr.steps[0];
  const map = step.getMap();
  let only = null;
  let count = 0;
  map.forEach((from, to, newFrom, newTo) => {
    count += 1;
    only = { from, to, newFrom, newTo };
  });
  if (count !== 1 || only.from !== ghost.at || only.to !== ghost.at) return null;
  const typed = tr.doc.textBetween(only.newFrom, only.newTo, BLOCK_SEPARATOR, OBJECT);
  if (!typed || typed.length !== only.newTo - only.newFrom || !ghost.text.startsWith(typed)) return null;
  if (!selection.empty || selection.head !== only.newTo) return null;
  const rest = ghost.text.slice(typed.length);
  return rest ? { id: ghost.id, text: rest, at: only.newTo } : null;
}

/** Findings moved through `tr`; one whose quoted text changed is dropped (stale). */
function mapFindings(findings, tr) {
  const kept = [];
  for (const it of findings) {
    const from = tr.mapping.map(it.from, 1);
    const to = tr.mapping.map(it.to, -1);
    if (to - from === it.quote.length && tr.doc.textBetween(from, to, BLOCK_SEPARATOR, OBJECT) === it.quote) {
      kept.push({ ...it, from, to });
    }
  }
  return kept;
}

/** Place finding `f` (its `range` in the reviewed text) in the document now, or null. */
function placeFinding(review, f, range, doc) {
  if (!review || !range) return null;
  const from0 = posAt(review.flat, range.from);
  const to0 = posAt(review.flat, range.to);
  if (from0 === null || to0 === null) return null;
  const from = review.mapping.map(from0, 1);
  const to = review.mapping.map(to0, -1);
  if (to - from !== range.quote.length || doc.textBetween(from, to, BLOCK_SEPARATOR, OBJECT) !== range.quote) return null;
  return {
    index: f.index,
    from,
    to,
    quote: range.quote,
    replacement: String(f.replacement ?? ""),
    severity: SEVERITIES.includes(f.severity) ? f.severity : "low",
    message: String(f.problem ?? ""),
  };
}

const EMPTY = { ghost: null, findings: [], review: null, quiet: false };

function stateField() {
  return {
    init: () => EMPTY,
    apply(tr, value, _old, newState) {
      const meta = tr.getMeta(assistantKey) || {};
      let { ghost, findings, review } = value;
      if (tr.docChanged) {
        ghost = ghost ? typedThrough(ghost, tr, newState.selection) : null;
        findings = mapFindings(findings, tr);
        if (review) review.mapping.appendMapping(tr.mapping);
      } else if (ghost && tr.selectionSet && (!newState.selection.empty || newState.selection.head !== ghost.at)) {
        ghost = null;
      }
      if ("ghost" in meta) ghost = meta.ghost;
      if (meta.review) {
        findings = [];
        review = meta.review;
      }
      if (meta.finding) {
        const placed = placeFinding(review, meta.finding, meta.range, tr.doc);
        if (placed) findings = [...findings.filter((it) => it.index !== placed.index), placed];
      }
      if (meta.retract !== undefined) findings = findings.filter((it) => it.index !== meta.retract);
      if (meta.applied !== undefined) findings = findings.filter((it) => it.index !== meta.applied);
      return { ghost, findings, review, quiet: !!meta.quiet };
    },
  };
}

function decorations(state) {
  const { ghost, findings } = assistantKey.getState(state);
  const decos = findings.map((it) =>
    Decoration.inline(it.from, it.to, {
      class: "assistant-finding",
      "data-severity": it.severity,
      "data-index": String(it.index),
      title: it.replacement ? `${it.message} → ${it.replacement}` : it.message,
    }),
  );
  if (ghost) {
    const text = ghost.text;
    const toDOM = () => {
      const span = document.createElement("span");
      span.className = "assistant-ghost";
      span.setAttribute("aria-hidden", "true");
      span.style.opacity = "0.5"; // told apart from the text even with no stylesheet
      span.textContent = text;
      return span;
    };
    decos.push(Decoration.widget(ghost.at, toDOM, { side: 1, key: `ghost:${ghost.id}:${text}`, ignoreSelection: true }));
  }
  return decos.length ? DecorationSet.create(state.doc, decos) : DecorationSet.empty;
}

/** The ghost if it is still for the cursor as it is. */
function liveGhost(state) {
  const g = assistantKey.getState(state)?.ghost;
  return g && state.selection.empty && state.selection.head === g.at ? g : null;
}

/** Dispatch `tr` as a history event of its own (nothing before or after merges with it). */
function dispatchIsolated(view, tr) {
  view.dispatch(closeHistory(tr));
  view.dispatch(closeHistory(view.state.tr));
}

class AssistantView {
  constructor(view, options) {
    this.view = view;
    this.session = new SuggestionSession(options.client, {
      snapshot: () => this.snapshot(),
      show: (ghost) => this.view.dispatch(this.view.state.tr.setMeta(assistantKey, { ghost })),
      composing: () => this.view.composing,
      focused: () => this.view.hasFocus(),
      current: () => assistantKey.getState(this.view.state).ghost,
    });
    this.review = new ReviewSession(options.client, {
      finding: (f, range) => this.view.dispatch(this.view.state.tr.setMeta(assistantKey, { finding: f, range })),
      retracted: (index) => this.view.dispatch(this.view.state.tr.setMeta(assistantKey, { retract: index })),
      status: (text, ended) => options.onReviewStatus && options.onReviewStatus(text, ended),
    });
  }

  snapshot() {
    const { state } = this.view;
    const sel = state.selection;
    if (!sel.empty) return null;
    const flat = flatten(state.doc);
    const cursor = offsetAt(flat, sel.head);
    if (cursor === null) return null;
    return { text: flat.text, cursor, key: state.doc, at: sel.head };
  }

  update(view, prev) {
    if (view.composing) {
      this.session.cancel();
      return;
    }
    if (view.state.doc !== prev.doc && !assistantKey.getState(view.state).quiet) {
      this.session.request();
      return;
    }
    this.session.cancelIfMoved();
  }

  destroy() {
    this.session.destroy();
    this.review.destroy();
  }

  accept(part) {
    const ghost = liveGhost(this.view.state);
    if (!ghost) return false;
    const { text, rest } = this.session.take(ghost, part);
    const tr = this.view.state.tr;
    const end = insertProse(tr, ghost.at, text);
    tr.setSelection(TextSelection.create(tr.doc, end));
    tr.setMeta(assistantKey, { ghost: rest && !text.includes("\n") ? { id: ghost.id, text: rest, at: end } : null });
    dispatchIsolated(this.view, tr.scrollIntoView());
    return true;
  }

  dismiss() {
    const shown = assistantKey.getState(this.view.state).ghost;
    this.session.cancel();
    if (shown) this.view.dispatch(this.view.state.tr.setMeta(assistantKey, { ghost: null }));
    // Esc is ours only when a ghost was on screen; otherwise it goes on to the page.
    return !!shown;
  }

  startReview() {
    const flat = flatten(this.view.state.doc);
    const review = { flat, mapping: new Mapping() };
    const id = this.review.start(flat.text);
    if (id !== null) this.view.dispatch(this.view.state.tr.setMeta(assistantKey, { review }));
    return id;
  }

  applyFinding(index) {
    const { state } = this.view;
    const it = assistantKey.getState(state).findings.find((f) => f.index === index);
    if (!it || state.doc.textBetween(it.from, it.to, BLOCK_SEPARATOR, OBJECT) !== it.quote) return false;
    const tr = state.tr.delete(it.from, it.to);
    insertProse(tr, it.from, it.replacement);
    dispatchIsolated(this.view, tr.setMeta(assistantKey, { applied: index, quiet: true }));
    return true;
  }
}

/**
 * The ProseMirror plugins (put them before your own keymaps): ghost-text suggestions (Tab
 * accepts, Ctrl+Right accepts a word, Esc dismisses, typing the ghost uses it up) and review
 * findings as inline decorations ("assistant-finding") whose fix applyFinding() applies.
 *
 * @param {object} options
 * @param {import("./client.js").AssistantClient} options.client
 * @param {(text: string, ended: boolean) => void} [options.onReviewStatus]  review progress
 * @returns {Plugin[]}
 */
export function assistantPlugins(options) {
  if (!options || !options.client) throw new TypeError("assistantPlugins(): options.client is required");
  const plugin = new Plugin({
    key: assistantKey,
    state: stateField(),
    props: {
      decorations,
      handleDOMEvents: {
        compositionstart: (view) => {
          viewOf(view)?.dismiss();
          return false;
        },
        compositionend: (view) => {
          // ProseMirror applies the composed text after this event: ask once it has.
          setTimeout(() => {
            if (!view.composing) viewOf(view)?.session.request();
          }, 0);
          return false;
        },
        blur: (view) => {
          viewOf(view)?.dismiss();
          return false;
        },
      },
    },
    view: (view) => {
      const av = new AssistantView(view, options);
      VIEWS.set(view, av);
      return av;
    },
  });
  const keys = keymap({
    Tab: (_state, _dispatch, view) => !!view && (viewOf(view)?.accept("all") ?? false),
    [MAC ? "Alt-ArrowRight" : "Ctrl-ArrowRight"]: (_state, _dispatch, view) => !!view && (viewOf(view)?.accept("word") ?? false),
    Escape: (_state, _dispatch, view) => !!view && (viewOf(view)?.dismiss() ?? false),
  });
  return [plugin, keys];
}

const VIEWS = new WeakMap();

function viewOf(view) {
  return VIEWS.get(view) || null;
}

/** Review the whole document; findings arrive as decorations. Returns the review id. */
export function startReview(view) {
  return viewOf(view)?.startReview() ?? null;
}

/** The findings in `view`: [{index, from, to, quote, replacement, severity, message}]. */
export function reviewFindings(state) {
  return assistantKey.getState(state)?.findings ?? [];
}

/** Apply finding `index`'s fix as one undo step, only if its quoted text is still there. */
export function applyFinding(view, index) {
  return viewOf(view)?.applyFinding(index) ?? false;
}

/** The ghost on screen, or null. */
export function currentGhost(state) {
  return assistantKey.getState(state)?.ghost ?? null;
}

/** The log of ghosts shown in `view` (what each answered, what was on screen), for tests. */
export function suggestionLog(view) {
  return viewOf(view)?.session.shown ?? [];
}
