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
- Only what is on screen is accepted: a ghost that wraps past the bottom edge scrolls the view
  so all of it shows (when it fits), and Tab, Right and Ctrl+Right take no more of it than the
  rows in view hold (cut at a word; :meth:`GhostEditor.shown_ghost`). A writer once pressed Tab
  on the last row and got "children played on the beach while" for a screen showing
  "children".
- Esc followed quickly by a key arrives as Alt+key (Textual's key parser cannot tell them
  apart, the terminal sends the same bytes, and tmux's escape-time makes it common): Alt plus a
  printable character is handled as Esc then that character, so the ghost is dismissed.
- Ctrl+Home / Ctrl+End go to the start / end of the document; a resize keeps the cursor (and
  its ghost) in view.
- It posts messages for the app to turn into protocol frames: ``Edited`` (send ``suggest``),
  ``Dismissed`` (send ``cancel``), ``Accepted`` (send ``accept``), ``EscapePressed`` (Esc with
  no ghost: the app may cancel a review).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.style import Style
from textual import events
from textual.actions import SkipAction
from textual.binding import Binding
from textual.geometry import Offset, Size
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
        Binding("ctrl+home", "document_start", "Start of document", show=False),
        Binding("ctrl+end", "document_end", "End of document", show=False),
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
        if not self.soft_wrap:
            self._refresh_size()
            self.refresh()

    def _refresh_size(self) -> None:
        super()._refresh_size()
        if self.soft_wrap or not self.suggestion:
            return
        # Without soft wrap Textual crops every row at the document's width, so a ghost at the
        # end of the longest line showed one cell ("c" for "children played"): widen for it.
        try:
            x = self.wrapped_document.location_to_offset(self.selection.end).x
        except (IndexError, ValueError):
            return
        width, height = self.virtual_size
        needed = self.gutter_width + x + cell_len(self.suggestion) + 1
        if needed > width:
            self.virtual_size = Size(needed, height)

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
        if ghost:
            self.scroll_ghost_visible()

    def _ghost_char_offset(self, index: int) -> Offset:
        """Where the ghost's ``index``-th character is drawn, in the text's own coordinates."""
        row, column = self.selection.end
        if self.soft_wrap:  # the wrapper sees the line with the ghost in it
            return self.wrapped_document.location_to_offset((row, column + index))
        cursor = self.wrapped_document.location_to_offset((row, column))
        return Offset(cursor.x + cell_len(self.suggestion[:index]), cursor.y)

    def _ghost_char_on_screen(self, index: int) -> bool:
        offset = self._ghost_char_offset(index)
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width - self.gutter_width
        height = self.scrollable_content_region.height
        right = offset.x - scroll_x + cell_len(self.suggestion[index])
        return scroll_y <= offset.y < scroll_y + height and scroll_x <= offset.x and right <= width

    def shown_ghost(self) -> str:
        """The part of the ghost on screen now: all of it, or the rows in view cut at a word.

        A ghost's characters run down the rows in order, so the visible ones are a prefix
        (none when the cursor's row is out of view); a binary search finds where it ends.
        """
        ghost = self.suggestion
        try:
            if not ghost or not self._ghost_char_on_screen(0):
                return ""
            low, high = 1, len(ghost)  # ghost[:low] is on screen; find the longest such
            while low < high:
                middle = (low + high + 1) // 2
                if self._ghost_char_on_screen(middle - 1):
                    low = middle
                else:
                    high = middle - 1
        except (IndexError, ValueError):
            return ""
        if low < len(ghost) and not ghost[low].isspace():
            cut = ghost.rfind(" ", 0, low)  # the word running off screen is not taken
            if cut > 0:
                low = cut
        return ghost[:low]

    def scroll_ghost_visible(self) -> None:
        """Scroll down so the whole ghost is in view (the cursor's row with it).

        The cursor is drawn where the ghost starts, which may be the row below the one the
        text ends on, so this also keeps the cursor in view."""
        ghost = self.suggestion
        if not ghost:
            return
        try:
            first = self._ghost_char_offset(0).y
            last = self._ghost_char_offset(len(ghost) - 1).y
        except (IndexError, ValueError):
            return
        height = self.scrollable_content_region.height
        top = self.scroll_offset.y
        # Only when the ghost starts in view or on the row just below it (where the text ran
        # out of room): a writer who scrolled away to read is not pulled back by a ghost.
        if top <= first <= top + height and last >= top + height:
            # All of it, or (taller than the view) as much as fits from the cursor's row.
            self.scroll_to(y=min(last - height + 1, first), animate=False, immediate=True)

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

    def _accept(self, wanted: str) -> None:
        """Insert ``wanted`` (the ghost or its next word), never more of it than is on screen.

        With the ghost out of view (the writer scrolled away) nothing is inserted: the view
        goes back to it and the next press takes what then shows."""
        shown = self.shown_ghost()
        if not shown:
            self.scroll_cursor_visible()
            self.scroll_ghost_visible()
            return
        text = wanted if shown.startswith(wanted) else shown
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

    def action_document_start(self) -> None:
        self.move_cursor((0, 0))
        self.scroll_cursor_visible()

    def action_document_end(self) -> None:
        self.move_cursor(self.document.end)
        self.scroll_cursor_visible()

    async def _on_key(self, event: events.Key) -> None:
        character = _escaped_character(event)
        if character is None:
            await super()._on_key(event)
            return
        # Esc then a character, read as Alt+character: dismiss, then type the character.
        event.stop()
        event.prevent_default()
        self.action_dismiss()
        self._replace_via_keyboard(character, *self.selection)  # as TextArea types a key

    def _on_resize(self, event: events.Resize) -> None:
        super()._on_resize()
        # The text re-wraps to the new width; without this the view stays at the old row
        # offset and shows another part of the document until the writer types.
        self.call_after_refresh(self._keep_cursor_in_view)

    def _keep_cursor_in_view(self) -> None:
        self.scroll_cursor_visible()
        self.scroll_ghost_visible()

    def action_dismiss(self) -> None:
        if self.suggestion:
            self.clear_ghost()
        else:
            self.post_message(self.EscapePressed(self))


def _escaped_character(event: events.Key) -> str | None:
    """The character of an Alt+character key (Esc then the character: ``alt+g``, or
    ``alt+shift+g`` for G), else None."""
    *modifiers, name = event.key.split("+")
    if "alt" not in modifiers or not set(modifiers) <= {"alt", "shift"}:
        return None
    character = event.character
    if character is None or len(character) != 1:
        character = " " if name == "space" else name.upper() if "shift" in modifiers else name
    return character if len(character) == 1 and character.isprintable() else None
