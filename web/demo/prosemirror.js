// /demo/prosemirror: a ProseMirror editor (basic schema, history) with the assistant plugins,
// and the review's findings listed beside it with Apply buttons.

import { baseKeymap, toggleMark } from "prosemirror-commands";
import { history, redo, undo } from "prosemirror-history";
import { keymap } from "prosemirror-keymap";
import { schema } from "prosemirror-schema-basic";
import { EditorState } from "prosemirror-state";
import { EditorView } from "prosemirror-view";
import { applyFinding, assistantPlugins, reviewFindings, startReview, suggestionLog } from "../src/prosemirror.js";
import { demoClient, onReviewClick, reviewStatus } from "./page.js";

const client = demoClient();

/** Shift+Enter: a line break inside the paragraph. */
function hardBreak(state, dispatch) {
  if (dispatch) dispatch(state.tr.replaceSelectionWith(schema.nodes.hard_break.create()).scrollIntoView());
  return true;
}
const list = document.getElementById("findings");

function renderFindings(state) {
  const items = reviewFindings(state).map((it) => {
    const li = document.createElement("li");
    li.className = "finding";
    li.dataset.index = String(it.index);
    const del = document.createElement("del");
    del.textContent = it.quote;
    const ins = document.createElement("ins");
    ins.textContent = it.replacement;
    const apply = document.createElement("button");
    apply.type = "button";
    apply.className = "apply";
    apply.textContent = "Apply";
    apply.addEventListener("click", () => applyFinding(view, it.index));
    li.append(`${it.message} `, del, " → ", ins, " ", apply);
    return li;
  });
  list.replaceChildren(...items);
}

const view = new EditorView(document.getElementById("editor"), {
  state: EditorState.create({
    schema,
    plugins: [
      ...assistantPlugins({ client, onReviewStatus: reviewStatus }),
      history(),
      keymap({
        "Mod-z": undo,
        "Mod-y": redo,
        "Shift-Mod-z": redo,
        "Mod-b": toggleMark(schema.marks.strong),
        "Mod-i": toggleMark(schema.marks.em),
        "Shift-Enter": hardBreak,
      }),
      keymap(baseKeymap),
    ],
  }),
  dispatchTransaction(tr) {
    const before = reviewFindings(view.state);
    view.updateState(view.state.apply(tr));
    if (reviewFindings(view.state) !== before) renderFindings(view.state);
  },
});
onReviewClick(() => startReview(view));
window.assistantView = view;
window.assistantClient = client;
window.assistantLog = suggestionLog(view);
window.assistantFindings = () => reviewFindings(view.state);
view.focus();
