"""The server's copy of a 1.1 document (server/document.py) against a plain reference string,
and the editor's DocumentSync (tui/document_sync.py) against the server's copy."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import protocol as p
from server.document import (
    OPEN_FRAME_OVERHEAD,
    Document,
    DocumentError,
    DocumentLimits,
    DocumentSession,
    encoded_size,
)
from tui.document_sync import DocumentSync, single_change

LIMITS = DocumentLimits(max_chars=10_000, max_frame_bytes=1_048_576)
# Astral characters (one code point, two UTF-16 units), quotes and control characters that JSON
# escapes, and plain letters.
TEXT = st.text(alphabet=st.sampled_from(list('ab \n"\\\t\x01é€') + ["😀", "𝄞"]), max_size=40)


@st.composite
def edits(draw, length: int):
    """Sorted, non-overlapping changes against a text of ``length`` code points."""
    points = sorted(draw(st.lists(st.integers(0, length), max_size=6)))
    if len(points) % 2:
        points.append(length)
    return [p.Change(points[i], points[i + 1], draw(TEXT)) for i in range(0, len(points), 2)]


def apply_reference(text: str, changes: list[p.Change]) -> str:
    for c in reversed(changes):  # from the end, so earlier offsets stay valid
        text = text[: c.start] + c.text + text[c.end :]
    return text


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_series_of_edits_keeps_the_copy_equal_to_the_reference(data):
    reference = data.draw(TEXT)
    doc = Document(1, reference, 0, LIMITS)
    for version in range(2, 8):
        changes = data.draw(edits(len(reference)))
        reference = apply_reference(reference, changes)
        cursor = data.draw(st.integers(0, len(reference)))
        doc.edit(version, version - 1, tuple(changes), cursor)
        assert doc.text == reference
        assert doc.version == version
        assert doc.around_cursor() == (reference[:cursor], reference[cursor:])
        assert doc._size == encoded_size(reference)  # kept incrementally, checked in full


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_refused_edit_changes_nothing(data):
    text = data.draw(TEXT)
    doc = Document(3, text, 0, LIMITS)
    bad = data.draw(
        st.sampled_from(
            [
                ("base", 2, (p.Change(0, 0, "x"),), 0),
                ("range", 3, (p.Change(0, len(text) + 1, "x"),), 0),
                ("overlap", 3, (p.Change(0, 1, "x"), p.Change(0, 1, "y")), 0),
                ("cursor", 3, (p.Change(0, 0, "x"),), len(text) + 2),
                ("size", 3, (p.Change(0, 0, "z" * (LIMITS.max_chars + 1)),), 0),
            ]
        )
    )
    why, base, changes, cursor = bad
    with pytest.raises(DocumentError) as err:
        doc.edit(4, base, changes, cursor)
    expected = {"base": "resync", "size": "too_large"}.get(why, "bad_request")
    assert err.value.code == expected
    assert (doc.text, doc.cursor, doc.version) == (text, 0, 3)


def test_the_document_must_still_fit_one_open_frame():
    limits = DocumentLimits(max_chars=10_000, max_frame_bytes=OPEN_FRAME_OVERHEAD + 102)
    doc = Document(1, "a" * 50, 0, limits)  # 52 bytes encoded
    doc.edit(2, 1, (p.Change(0, 0, "b" * 50),), 0)  # 102: exactly fits
    with pytest.raises(DocumentError, match="open frame") as err:
        doc.edit(3, 2, (p.Change(0, 0, "\x01"),), 0)  # one character, six bytes as \u0001
    assert err.value.code == p.TOO_LARGE
    assert doc.text == "b" * 50 + "a" * 50
    with pytest.raises(DocumentError):
        Document(4, "é" * 60, 0, limits)  # 60 code points but 122 bytes


def test_offsets_are_code_points_not_utf16_units():
    doc = Document(1, "😀😀x", 3, LIMITS)
    doc.edit(2, 1, (p.Change(1, 2, "é"),), 2)
    assert doc.text == "😀éx"
    assert doc.around_cursor() == ("😀é", "x")


def test_the_session_answers_resync_until_a_document_is_open():
    session = DocumentSession(LIMITS)
    with pytest.raises(DocumentError) as err:
        session.around_cursor(1)
    assert err.value.code == p.RESYNC
    with pytest.raises(DocumentError) as err:
        session.apply(p.EditDocument(2, 1, (), 0))
    assert err.value.code == p.RESYNC
    session.apply(p.OpenDocument(3, "hello", 5))
    assert session.around_cursor(3) == ("hello", "")
    with pytest.raises(DocumentError) as err:
        session.around_cursor(2)
    assert err.value.code == p.RESYNC and "version 3" in err.value.message
    # a refused open keeps the document that was there
    with pytest.raises(DocumentError):
        session.apply(p.OpenDocument(4, "hi", 9))
    assert session.around_cursor(3) == ("hello", "")


@settings(max_examples=300, deadline=None)
@given(old=TEXT, new=TEXT)
def test_single_change_turns_old_into_new(old, new):
    change = single_change(old, new)
    if old == new:
        assert change is None
        return
    start, end, text = change
    assert old[:start] + text + old[end:] == new


def test_single_change_is_minimal_on_a_long_document():
    old = "word " * 20_000
    new = old[:61_234] + "X" + old[61_234:]
    assert single_change(old, new) == (61_234, 61_234, "X")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(TEXT, st.integers(0, 100)), min_size=1, max_size=8))
def test_the_editors_frames_keep_the_servers_copy_equal_to_the_editor(states):
    """Whatever the editor's text does, the frames DocumentSync makes bring the server there."""
    sync = DocumentSync()
    session = DocumentSession(LIMITS)
    decoder = p.FrameDecoder()
    ids = iter(range(1, 1000))
    for i, (text, at) in enumerate(states):
        cursor = min(at, len(text))
        if i % 2:  # a keystroke that asks: the suggest carries the edit
            frames = sync.suggest_frames(text, cursor, lambda: next(ids))
        else:  # a change synced without asking
            frames = [f for f in [sync.frame(text, cursor, next(ids))] if f is not None]
        for frame in frames:
            decoded = decoder.decode(orjson.dumps(frame))
            if isinstance(decoded, p.SuggestAt):
                if decoded.edit is not None:
                    session.apply(decoded.edit)
                assert decoded.version == sync.version
            else:
                session.apply(decoded)
        assert session.around_cursor(sync.version) == (text[:cursor], text[cursor:])
