"""Fuzzing the sans-I/O frame decoder (server/protocol.py), no sockets.

Two sources of input: hypothesis (arbitrary bytes, text, JSON values and frame-shaped objects)
and the seeded bad-frame generator of tools/raw_fuzz.py, the same frames the live fuzzer sends.
The decoder must never raise anything but ProtocolError, must reject every frame the protocol
calls bad with a documented code, must keep accepting after any amount of bad input, and must
return exactly what a valid frame said.
"""

from __future__ import annotations

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.protocol import (
    MAX_ID,
    AcceptChars,
    Cancel,
    CancelReview,
    EditDocument,
    FrameDecoder,
    Limits,
    OpenDocument,
    Ping,
    ProtocolError,
    Review,
    Suggest,
    SuggestAt,
    encode,
)
from tools.raw_fuzz import CATEGORIES, ERROR_CODES, IdState, bad_frame
from tools.raw_fuzz import Limits as FuzzLimits

from .conftest import scaled

LIMITS = Limits(max_prefix_chars=2000, max_suffix_chars=1000, max_review_chars=4000)
FUZZ_LIMITS = FuzzLimits(max_frame_bytes=16_384, max_prefix_chars=2000, max_suffix_chars=1000)
TYPES = ("suggest", "cancel", "accept", "review", "cancel_review", "ping", "open", "edit")
CLIENT_FRAMES = (
    Suggest,
    SuggestAt,
    OpenDocument,
    EditDocument,
    Cancel,
    AcceptChars,
    Review,
    CancelReview,
    Ping,
)


def fast(examples: int) -> settings:
    return settings(
        max_examples=scaled(examples),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_values = json_scalars | st.lists(json_scalars, max_size=2) | st.just({})
frame_like = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(TYPES) | st.text(max_size=10) | json_scalars,
        "id": st.integers(min_value=-3, max_value=50) | field_values,
        "prefix": st.text(max_size=50) | field_values,
        "suffix": st.text(max_size=50) | field_values,
        "text": st.text(max_size=50) | field_values,
        "chars": st.integers(min_value=-3, max_value=50) | field_values,
        "cursor": st.integers(min_value=-3, max_value=50) | field_values,
        "base": st.integers(min_value=-3, max_value=50) | field_values,
        "version": st.integers(min_value=-3, max_value=50) | field_values,
        "changes": st.lists(
            st.lists(st.integers(min_value=-2, max_value=60) | st.text(max_size=5), max_size=4),
            max_size=3,
        )
        | field_values,
    },
)


def _decode_or_error(dec: FrameDecoder, data: str | bytes):
    """Decode; any exception other than ProtocolError fails the test with the input."""
    try:
        return dec.decode(data)
    except ProtocolError as err:
        assert err.code in ERROR_CODES, (err.code, data)
        assert isinstance(err.message, str) and err.message
        assert err.id is None or (type(err.id) is int and 0 <= err.id <= MAX_ID)
        return err


def _check_accepted(frame, obj: dict, last_id_before: int) -> None:
    """What a valid frame decodes to: its own fields, exactly typed, within the limits."""
    assert isinstance(frame, CLIENT_FRAMES)
    assert type(frame.id) is int and 0 <= frame.id <= MAX_ID
    assert frame.id == obj["id"]
    if isinstance(frame, Suggest | SuggestAt | OpenDocument | EditDocument | Review | Ping):
        assert frame.id > last_id_before, "an opening frame's id must increase"
    else:
        assert frame.id <= last_id_before, "cancel/accept must name an earlier id"
    if isinstance(frame, Suggest):
        assert obj["type"] == "suggest"
        assert frame.prefix == obj["prefix"] and frame.suffix == obj.get("suffix", "")
        assert len(frame.prefix) <= LIMITS.max_prefix_chars
        assert len(frame.suffix) <= LIMITS.max_suffix_chars
    elif isinstance(frame, Review):
        assert frame.text == obj["text"] and len(frame.text) <= LIMITS.max_review_chars
    elif isinstance(frame, AcceptChars):
        assert type(obj["chars"]) is int and frame.chars == obj["chars"] >= 0
    elif isinstance(frame, OpenDocument):
        assert frame.text == obj["text"] and type(obj["cursor"]) is int and frame.cursor >= 0
    elif isinstance(frame, SuggestAt | EditDocument):
        edit = frame if isinstance(frame, EditDocument) else frame.edit
        if edit is not None:  # every change exactly as sent, integers, start <= end
            assert [[c.start, c.end, c.text] for c in edit.changes] == obj["changes"]
            assert all(type(c.start) is int and 0 <= c.start <= c.end for c in edit.changes)
            assert type(obj["cursor"]) is int and edit.cursor == obj["cursor"] >= 0


@fast(1500)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_bytes_and_text_never_crash_the_decoder(data):
    dec = FrameDecoder(LIMITS)
    _decode_or_error(dec, data)
    # ... and it still accepts a good frame afterwards.
    nxt = dec.last_id + 1
    assert dec.decode(f'{{"type":"ping","id":{nxt}}}') == Ping(nxt)


@fast(300)
@given(json_values)
def test_arbitrary_json_values_never_crash_the_decoder(value):
    dec = FrameDecoder(LIMITS)
    out = _decode_or_error(dec, json.dumps(value))
    if not isinstance(value, dict):
        assert isinstance(out, ProtocolError) and out.code == "bad_request"


@fast(400)
@given(st.lists(frame_like, min_size=1, max_size=8))
def test_frame_shaped_objects_are_decoded_exactly_or_rejected(objs):
    """A sequence on one decoder: each frame either decodes to exactly its fields or is
    rejected; the decoder's last id only ever moves up."""
    dec = FrameDecoder(LIMITS)
    for obj in objs:
        before = dec.last_id
        out = _decode_or_error(dec, json.dumps(obj))
        assert dec.last_id >= before
        if isinstance(out, ProtocolError):
            if out.id is not None:
                # An error that names an id names the frame's own, new id.
                assert out.id == obj.get("id") and out.id > before
        else:
            _check_accepted(out, obj, before)


@fast(300)
@given(st.lists(st.integers(min_value=-5, max_value=40), min_size=1, max_size=30))
def test_only_strictly_increasing_ids_open_requests(ids):
    dec = FrameDecoder(LIMITS)
    high = -1
    for i in ids:
        out = _decode_or_error(dec, json.dumps({"type": "ping", "id": i}))
        if i > high:
            assert out == Ping(i)
            high = i
        else:
            assert isinstance(out, ProtocolError) and out.code == "bad_request"
        assert dec.last_id == high


@fast(200)
@given(
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=3),
    st.text(max_size=5),
)
def test_prefix_and_suffix_limits_are_exact(extra_prefix, extra_suffix, seed_text):
    dec = FrameDecoder(LIMITS)
    prefix = (seed_text + "a" * LIMITS.max_prefix_chars)[
        : LIMITS.max_prefix_chars
    ] + "p" * extra_prefix
    suffix = "s" * (LIMITS.max_suffix_chars - 1 + extra_suffix)
    out = _decode_or_error(
        dec, json.dumps({"type": "suggest", "id": 1, "prefix": prefix, "suffix": suffix})
    )
    if extra_prefix or extra_suffix > 1:
        assert isinstance(out, ProtocolError) and out.code == "too_large" and out.id == 1
    else:
        assert out == Suggest(1, prefix, suffix)


@fast(150)
@given(
    st.dictionaries(
        st.sampled_from(("type", "id", "text", "source", "code", "message", "reason")),
        json_values,
        max_size=6,
    )
)
def test_encode_always_gives_json_text(frame):
    out = encode(frame)
    assert isinstance(out, str)
    assert isinstance(json.loads(out), dict)


def test_encode_survives_lone_surrogates_from_a_provider():
    out = encode({"type": "delta", "id": 1, "text": "a\ud800b"})
    assert json.loads(out)["type"] == "delta"


def test_generated_bad_frames_are_all_rejected_and_the_decoder_stays_usable():
    """The live fuzzer's frames, offline: every one rejected, a fresh ping accepted after each
    burst of 25, over ``12000 * RELIABILITY_SCALE`` frames."""
    total = scaled(12000)
    rng = random.Random(7)
    kinds: dict[str, int] = {}
    decoded = 0
    while decoded < total:
        dec = FrameDecoder(LIMITS)
        ids = IdState()
        for _ in range(20):  # bursts on one decoder, like one connection
            for _ in range(25):
                f = bad_frame(rng, ids, FUZZ_LIMITS)
                kinds[f.kind] = kinds.get(f.kind, 0) + 1
                decoded += 1
                if f.expect == "close_1009":
                    continue  # the transport closes; the decoder never sees it
                out = _decode_or_error(dec, f.payload)
                assert isinstance(out, ProtocolError), (f.kind, f.payload[:200], out)
                if f.expect_code:
                    assert out.code == f.expect_code, (f.kind, out.code)
                if f.expect_id is not None:
                    assert out.id == f.expect_id, (f.kind, f.payload[:200], out.id)
            ids.used += 1
            assert dec.decode(f'{{"type":"ping","id":{ids.used}}}') == Ping(ids.used)
            ids.accepted = ids.used
    assert decoded >= total
    assert set(kinds) >= {*CATEGORIES, "oversized"}
