// Corrections as you type in the web editor: the server's `check` frames (docs/protocol.md)
// kept as marks on the text, underlined in a layer under the transparent textarea (like the
// ghost's), and applied with F8 or a click on the hint under the editor, as one undoable edit.
//
// The server's offsets are code points into the text it was sent; the writer may have typed
// since, so a new mark is placed where its quote is (at its offsets or the nearest place within
// DRIFT). From then on every edit moves the marks after it and drops a mark it touches (its
// sentence is checked again once finished). Nothing changes the text without the writer.

const DRIFT = 200; // how far (UTF-16 units) a mark's quote may have moved before its check came
const NEAR = 80; // F8 with no mark under the caret applies the nearest within this distance

export class CheckMarks {
  /** `helpers`: {cpToUtf16, shiftRange} from the editor (one definition of each). */
  constructor(client, editor, readout, helpers) {
    this.client = client;
    this.editor = editor;
    this.readout = readout;
    this.cpToUtf16 = helpers.cpToUtf16;
    this.shiftRange = helpers.shiftRange;
    this.marks = []; // {start, end, quote, replacement, message} in UTF-16 units
    const ta = editor.ta;
    this.layer = document.createElement("div");
    this.layer.className = "ghost-layer check-layer";
    this.layer.setAttribute("aria-hidden", "true");
    ta.parentNode.insertBefore(this.layer, ta);
    this.hint = document.createElement("p");
    this.hint.className = "check-hint";
    this.hint.setAttribute("role", "status");
    ta.parentNode.after(this.hint);
    window.__checks = this;

    client.addEventListener("check", (e) => this.onCheck(e.detail));
    editor.onEdit((edit) => this.onEdit(edit));
    ta.addEventListener("scroll", () => this.syncScroll());
    ta.addEventListener("keydown", (e) => {
      if (e.key === "F8" && !e.isComposing) {
        e.preventDefault();
        this.applyNear();
      }
    });
    for (const type of ["keyup", "mouseup", "focus"]) ta.addEventListener(type, () => this.renderHint());
    new ResizeObserver(() => this.syncGeometry()).observe(ta);
    this.syncGeometry();
  }

  onCheck(f) {
    if (typeof f.session_cost_usd === "number") this.readout.setCost(f.session_cost_usd);
    const s = f.sentence;
    if (!s || !Array.isArray(f.findings) || !Number.isInteger(s.start) || !Number.isInteger(s.end)) return;
    const value = this.editor.ta.value;
    const lo = this.cpToUtf16(value, s.start);
    const hi = this.cpToUtf16(value, s.end);
    this.marks = this.marks.filter((m) => !(lo <= m.start && m.end <= hi));
    for (const x of f.findings) {
      if (!x || typeof x.quote !== "string" || !x.quote || typeof x.replacement !== "string") continue;
      const at = this.place(value, x.quote, this.cpToUtf16(value, x.start));
      if (at === null) continue;
      const mark = { start: at, end: at + x.quote.length, quote: x.quote, replacement: x.replacement, message: String(x.message ?? "") };
      if (this.marks.every((m) => mark.end <= m.start || m.end <= mark.start)) this.marks.push(mark);
    }
    this.marks.sort((a, b) => a.start - b.start);
    this.render();
  }

  /** Where `quote` is: at `start`, else the nearest occurrence within DRIFT; else null. */
  place(value, quote, start) {
    if (value.slice(start, start + quote.length) === quote) return start;
    const from = Math.max(0, start - DRIFT);
    const window = value.slice(from, start + quote.length + DRIFT);
    let best = null;
    for (let i = window.indexOf(quote); i >= 0; i = window.indexOf(quote, i + 1)) {
      if (best === null || Math.abs(from + i - start) < Math.abs(best - start)) best = from + i;
    }
    return best;
  }

  onEdit(edit) {
    if (!this.marks.length) return;
    const kept = [];
    for (const m of this.marks) {
      const r = this.shiftRange(m, edit);
      if (r) kept.push({ ...m, start: r.start, end: r.end });
    }
    this.marks = kept;
    this.render();
  }

  nearest() {
    const ta = this.editor.ta;
    const caret = ta.selectionStart;
    let best = null;
    let gap = NEAR + 1;
    for (const m of this.marks) {
      const d = m.start <= caret && caret <= m.end ? 0 : Math.min(Math.abs(caret - m.start), Math.abs(caret - m.end));
      if (d < gap) [best, gap] = [m, d];
    }
    return best;
  }

  applyNear() {
    const m = this.nearest();
    if (m) this.apply(m);
  }

  apply(m) {
    this.marks = this.marks.filter((x) => x !== m);
    if (this.editor.ta.value.slice(m.start, m.end) === m.quote) {
      this.editor.replaceRange(m.start, m.end, m.replacement); // one undo step
    }
    this.render();
  }

  // -- drawing --

  render() {
    const value = this.editor.ta.value;
    this.layer.textContent = "";
    let at = 0;
    for (const m of this.marks) {
      this.layer.append(value.slice(at, m.start));
      const span = document.createElement("span");
      span.className = "flag";
      span.textContent = value.slice(m.start, m.end);
      this.layer.append(span);
      at = m.end;
    }
    this.layer.append(value.slice(at));
    this.syncScroll();
    this.renderHint();
  }

  renderHint() {
    const m = this.nearest();
    this.hint.textContent = "";
    if (!m) return;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "check-apply";
    button.textContent = `${m.quote} → ${m.replacement || "(delete)"}`;
    button.title = m.message;
    button.addEventListener("mousedown", (e) => e.preventDefault()); // keep the caret
    button.addEventListener("click", () => this.apply(m));
    this.hint.append(button, ` ${m.message} · F8 or click to apply`);
  }

  syncScroll() {
    this.layer.scrollTop = this.editor.ta.scrollTop;
    this.layer.scrollLeft = this.editor.ta.scrollLeft;
  }

  syncGeometry() {
    const ta = this.editor.ta;
    const cs = getComputedStyle(ta);
    this.layer.style.paddingRight = `${parseFloat(cs.paddingRight) + ta.offsetWidth - ta.clientWidth}px`;
    this.layer.style.height = `${ta.offsetHeight}px`;
    this.syncScroll();
  }
}
