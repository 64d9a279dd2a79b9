"""The text area with ghost text: Textual's TextArea plus the rules of an inline suggestion.

The ghost is TextArea's native ``suggestion`` (drawn after the cursor in the
``text-area--suggestion`` style). This subclass adds what the native one lacks:

- Tab accepts the whole ghost, Ctrl+Right its next word, Esc dismisses it; without a ghost those
  keys do what they always do (indent, word right).
- Typing the ghost's next characters consumes them locally at once (TextArea does this), but
  any other edit, and any cursor move that is not the result of an edit, clears it.
- With soft wrap (the default), a ghost longer than the rest of its row wraps onto the next
  rows exactly as the text would once accepted: the wrapper sees the line with the ghost in it
  (:class:`_LinesWithGhost`). TextArea alone wraps the document without the ghost and clips the
  ghost at the right edge, so near the end of a row no suggestion could show at all.
- It posts messages for the app to turn into protocol frames: ``Edited`` (send ``suggest``),
  ``Dismissed`` (send ``cancel``), ``Accepted`` (send ``accept``), ``EscapePressed`` (Esc with
  no ghost: the app may cancel a review).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.style import Style
from textual.actions import SkipAction
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea
from textual.widgets.text_area import Edit, EditResult, Selection

from assistant.suggest.text import next_word


class _LinesWithGhost:
    """The document as the soft-wrapper sees it: ``ghost`` inserted at ``location``.

    TextArea draws the ghost into the cursor's line and then cuts that line at the wrap
    offsets; computing those offsets on the same text makes the ghost wrap like typed text."""

    def __init__(self, document, location: tuple[int, int], ghost: str) -> None:
        self._document = document
        self._row, self._column = location
        self._ghost = ghost

    def _with_ghost(self, index: int, line: str) -> str:
        if index != self._row:
            return line
        return line[: self._column] + self._ghost + line[self._column :]

    @property
    def lines(self) -> list[str]:
        lines = list(self._document.lines)
        if 0 <= self._row < len(lines):
            lines[self._row] = self._with_ghost(self._row, lines[self._row])
        return lines

    def get_line(self, index: int) -> str:
        return self._with_ghost(index, self._document.get_line(index))

    def __getitem__(self, index: int) -> str:
        return self.get_line(index)

    def __getattr__(self, name: str):
        return getattr(self._document, name)


class GhostEditor(TextArea):
    BINDINGS = [
        Binding("tab", "accept_all", "Accept", show=False, priority=True),
        Binding("ctrl+right", "accept_word", "Accept word", show=False, priority=True),
        Binding("escape", "dismiss", "Dismiss", show=False, priority=True),
    ]

    @dataclass
    class Edited(Message):
        """The text changed: ask for a suggestion at the cursor."""

        editor: GhostEditor

    @dataclass
    class Dismissed(Message):
        """The ghost (or the suggestion on its way) is unwanted: Esc, a cursor move, another edit."""

        editor: GhostEditor

    @dataclass
    class Accepted(Message):
        editor: GhostEditor
        chars: int

    @dataclass
    class EscapePressed(Message):
        editor: GhostEditor

    _in_edit = False  # a class default: TextArea moves the cursor before __init__ returns
    _ghost_row: int | None = None  # the line the wrapper sees with the ghost in it
    _marks: tuple[tuple[int, int], ...] = ()  # spans flagged by the server's checks
    MARK = "assistant.check"  # the highlight name of a flagged span
    MARK_STYLE = Style(underline=True, color="red")

    def __init__(self, text: str = "", **kwargs) -> None:
        kwargs.setdefault("tab_behavior", "indent")
        kwargs.setdefault("soft_wrap", True)
        super().__init__(text, **kwargs)

    # -- the ghost ------------------------------------------------------------------------------

    def show_ghost(self, text: str) -> None:
        """Show ``text`` after the cursor (first line only; nothing when it is blank)."""
        line = text.split("\n", 1)[0].replace("\r", "")
        if not line.strip():
            line = ""
        if not self.selection.is_empty:
            line = ""
        self.suggestion = line if self.soft_wrap else self._fit(line)

    def _fit(self, line: str) -> str:
        """Without soft wrap: as much of ``line`` as fits before the right edge, cut at a word
        boundary.

        Textual then draws the ghost on one row and clips it at the edge; a clipped word would
        be accepted whole by Tab without being seen. The rest comes back as the next suggestion
        once the shown part is accepted or typed.
        """
        width = self.scrollable_content_region.width - self.gutter_width - 1
        if not line or width <= 0:
            return line
        try:
            x = self.wrapped_document.location_to_offset(self.selection.end).x
        except (IndexError, ValueError):
            return line
        room = width - x
        if cell_len(line) <= room:
            return line
        cut = line.rfind(" ", 1, room + 1)
        while cut > 0 and cell_len(line[:cut]) > room:
            cut = line.rfind(" ", 1, cut)
        return line[:cut] if cut > 0 else ""

    def watch_suggestion(self) -> None:
        self._wrap_ghost()

    def _wrap_ghost(self) -> None:
        """Re-wrap the cursor's line with the ghost in it (and the line that had it without)."""
        wrapped = self.wrapped_document
        real = self.document
        cursor = self.selection.end
        ghost = self.suggestion if self.soft_wrap else ""
        rows = {self._ghost_row, cursor[0] if ghost else None} - {None}
        if not ghost and self._ghost_row is None:
            return
        try:
            wrapped.document = _LinesWithGhost(real, cursor, ghost) if ghost else real
            for row in rows:
                if row < real.line_count:
                    wrapped.wrap_range((row, 0), (row, 0), (row, 0))
            self._ghost_row = cursor[0] if ghost else None
        except Exception:  # never lose the editor over a ghost: wrap the plain text
            wrapped.document = real
            self._ghost_row = None
            wrapped.wrap(self.wrap_width, self.indent_width)
        self._line_cache.clear()
        self._refresh_size()
        self.refresh()

    def clear_ghost(self, *, notify: bool = True) -> None:
        had = bool(self.suggestion)
        self.suggestion = ""
        if had and notify:
            self.post_message(self.Dismissed(self))

    # -- flagged spans (checks as you type) ------------------------------------------------------

    def set_marks(self, spans: list[tuple[int, int]]) -> None:
        """Underline ``spans`` (code points into the text), drawn like syntax highlights."""
        spans_t = tuple(spans)
        if spans_t == self._marks:
            return
        self._marks = spans_t
        theme = self._theme
        if theme is not None and self.MARK not in theme.syntax_styles:
            theme.syntax_styles = {**theme.syntax_styles, self.MARK: self.MARK_STYLE}
        self._build_highlight_map()
        self.refresh()

    def _build_highlight_map(self) -> None:
        super()._build_highlight_map()
        doc = self.document
        for start, end in self._marks:
            try:
                (row, col), (end_row, end_col) = (
                    doc.get_location_from_index(start),
                    doc.get_location_from_index(end),
                )
            except (IndexError, ValueError):
                continue
            if row != end_row:
                continue
            line = doc[row]  # highlights are in UTF-8 byte columns
            lo, hi = len(line[:col].encode()), len(line[:end_col].encode())
            self._highlights[row].append((lo, hi, self.MARK))

    # -- where the cursor is --------------------------------------------------------------------

    def text_around_cursor(self) -> tuple[str, str]:
        """(prefix, suffix): the whole text before and after the cursor."""
        doc = self.document
        cursor = self.selection.end
        end = (doc.line_count - 1, len(doc[doc.line_count - 1]))
        return doc.get_text_range((0, 0), cursor), doc.get_text_range(cursor, end)

    def offset_to_location(self, offset: int) -> tuple[int, int]:
        return self.document.get_location_from_index(offset)

    def select_span(self, start: int, end: int) -> None:
        self.selection = Selection(self.offset_to_location(start), self.offset_to_location(end))
        self.scroll_cursor_visible(center=True)

    # -- edits ----------------------------------------------------------------------------------

    def edit(self, edit: Edit) -> EditResult:
        cursor = self.selection.end
        typed_ghost = (
            bool(self.suggestion)
            and bool(edit.text)
            and edit.from_location == edit.to_location == cursor
            and self.suggestion.startswith(edit.text)
        )
        if not typed_ghost and self.suggestion:
            # Anything but typing the ghost's own next characters makes it wrong here.
            self.clear_ghost()
        self._in_edit = True
        try:
            return super().edit(edit)
        finally:
            self._in_edit = False
            self._wrap_ghost()  # TextArea wrapped before moving the cursor past the edit

    def undo(self) -> None:
        self.clear_ghost()
        super().undo()

    def redo(self) -> None:
        self.clear_ghost()
        super().redo()

    def watch_selection(self, previous: Selection, selection: Selection) -> None:
        # Called synchronously when the selection changes; inside edit() it is the edit's own
        # cursor move, anything else is the user moving away from the ghost.
        # The request in flight (if any) is for the old place too: Dismissed cancels it.
        if not self._in_edit and previous != selection and self.is_mounted:
            self.suggestion = ""
            self.post_message(self.Dismissed(self))

    def _on_text_area_changed(self, event: TextArea.Changed) -> None:
        self.post_message(self.Edited(self))

    # -- accepting ------------------------------------------------------------------------------

    def _accept(self, text: str) -> None:
        if not text:
            return
        self.insert(text)  # an edit that types the ghost: consumed, the rest stays shown
        self.post_message(self.Accepted(self, len(text)))

    def action_accept_all(self) -> None:
        if not self.suggestion:
            raise SkipAction()
        self._accept(self.suggestion)

    def action_accept_word(self) -> None:
        if not self.suggestion:
            raise SkipAction()
        self._accept(next_word(self.suggestion))

    def action_cursor_right(self, select: bool = False) -> None:
        # TextArea's Right accepts the ghost; keep that, and report it like Tab.
        if self.suggestion and not select and self.selection.is_empty:
            self._accept(self.suggestion)
            return
        super().action_cursor_right(select)

    def action_dismiss(self) -> None:
        if self.suggestion:
            self.clear_ghost()
        else:
            self.post_message(self.EscapePressed(self))
