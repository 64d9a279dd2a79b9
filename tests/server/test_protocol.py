"""The sans-I/O frame decoder and encoders (server/protocol.py)."""

from __future__ import annotations

import orjson
import pytest

from assistant.pricing import Usage
from server import protocol as p
from server.auth import admit, own_origins
from server.ratelimit import TokenBucket


def decoder(**limits) -> p.FrameDecoder:
    return p.FrameDecoder(p.Limits(**limits) if limits else None)


def test_valid_frames_decode_to_their_dataclasses():
    d = decoder()
    assert d.decode('{"type":"suggest","id":1,"prefix":"Hi ","suffix":"x"}') == p.Suggest(
        1, "Hi ", "x"
    )
    assert d.decode(b'{"type":"suggest","id":2,"prefix":"Hi"}') == p.Suggest(2, "Hi", "")
    assert d.decode('{"type":"cancel","id":2}') == p.Cancel(2)
    assert d.decode('{"type":"accept","id":2,"chars":3}') == p.AcceptChars(2, 3)
    assert d.decode('{"type":"review","id":3,"text":"t"}') == p.Review(3, "t")
    assert d.decode('{"type":"cancel_review","id":3}') == p.CancelReview(3)
    assert d.decode('{"type":"ping","id":4}') == p.Ping(4)
    assert d.decode('{"type":"warm","id":5,"prefix":"Dear","suffix":"!"}') == p.Warm(5, "Dear", "!")


@pytest.mark.parametrize(
    "frame, code, has_id",
    [
        ("not json", p.BAD_REQUEST, False),
        (b"\xff\xfe", p.BAD_REQUEST, False),
        ("[1,2]", p.BAD_REQUEST, False),
        ('"suggest"', p.BAD_REQUEST, False),
        ('{"id":5}', p.BAD_REQUEST, False),
        ('{"type":7,"id":5}', p.BAD_REQUEST, False),
        ('{"type":"suggest","prefix":"a"}', p.BAD_REQUEST, False),
        ('{"type":"suggest","id":"5","prefix":"a"}', p.BAD_REQUEST, False),
        ('{"type":"suggest","id":true,"prefix":"a"}', p.BAD_REQUEST, False),
        ('{"type":"suggest","id":5.0,"prefix":"a"}', p.BAD_REQUEST, False),
        ('{"type":"suggest","id":-1,"prefix":"a"}', p.BAD_REQUEST, False),
        ('{"type":"suggest","id":9007199254740992,"prefix":"a"}', p.BAD_REQUEST, False),
        ('{"type":"suggest","id":5}', p.BAD_REQUEST, True),
        ('{"type":"suggest","id":5,"prefix":3}', p.BAD_REQUEST, True),
        ('{"type":"suggest","id":5,"prefix":"a","suffix":null}', p.BAD_REQUEST, True),
        ('{"type":"suggest","id":5,"prefix":"' + "a" * 101 + '"}', p.TOO_LARGE, True),
        ('{"type":"suggest","id":5,"prefix":"a","suffix":"' + "b" * 51 + '"}', p.TOO_LARGE, True),
        ('{"type":"review","id":5}', p.BAD_REQUEST, True),
        ('{"type":"warm","id":5}', p.BAD_REQUEST, True),
        ('{"type":"warm","id":5,"prefix":"' + "a" * 101 + '"}', p.TOO_LARGE, True),
        ('{"type":"review","id":5,"text":"' + "c" * 201 + '"}', p.TOO_LARGE, True),
        ('{"type":"bogus","id":5}', p.BAD_REQUEST, True),
        ('{"type":"cancel","id":50}', p.BAD_REQUEST, False),
        ('{"type":"cancel"}', p.BAD_REQUEST, False),
        ('{"type":"accept","id":1,"chars":-1}', p.BAD_REQUEST, False),
        ('{"type":"accept","id":1}', p.BAD_REQUEST, False),
    ],
)
def test_bad_frames_raise_protocol_errors_with_a_code_and_the_id_when_usable(frame, code, has_id):
    d = decoder(max_prefix_chars=100, max_suffix_chars=50, max_review_chars=200)
    d.decode('{"type":"ping","id":1}')
    with pytest.raises(p.ProtocolError) as info:
        d.decode(frame)
    assert info.value.code == code
    assert info.value.id == (5 if has_id else None)
    assert info.value.message
    # The decoder still works afterwards.
    assert d.decode('{"type":"ping","id":100}') == p.Ping(100)


def test_ids_must_increase_across_all_opening_frames():
    d = decoder()
    d.decode('{"type":"suggest","id":3,"prefix":"a"}')
    d.decode('{"type":"ping","id":4}')
    for stale in (4, 3, 0):
        with pytest.raises(p.ProtocolError) as info:
            d.decode(f'{{"type":"suggest","id":{stale},"prefix":"a"}}')
        assert info.value.code == p.BAD_REQUEST and info.value.id is None
    # Referring frames name an earlier id and do not advance.
    assert d.decode('{"type":"cancel","id":3}') == p.Cancel(3)
    assert d.decode('{"type":"suggest","id":5,"prefix":"a"}').id == 5


def test_a_too_large_frame_still_uses_up_its_id():
    d = decoder(max_prefix_chars=3)
    with pytest.raises(p.ProtocolError):
        d.decode('{"type":"suggest","id":1,"prefix":"abcd"}')
    with pytest.raises(p.ProtocolError) as info:
        d.decode('{"type":"suggest","id":1,"prefix":"ab"}')
    assert info.value.id is None


def test_encoders_produce_the_documented_shapes():
    done = orjson.loads(
        p.encode(
            p.done_frame(
                7,
                " the report.",
                source="model",
                model="claude-haiku-4-5",
                latency_ms=312.4444,
                usage=Usage(10, 4, estimated=True),
                cost_usd=0.00003,
            )
        )
    )
    assert done == {
        "type": "done",
        "id": 7,
        "text": " the report.",
        "source": "model",
        "model": "claude-haiku-4-5",
        "latency_ms": 312.444,
        "usage": {
            "input_tokens": 10,
            "output_tokens": 4,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "estimated": True,
        },
        "cost_usd": 0.00003,
        "estimated": True,
    }
    assert orjson.loads(p.encode(p.error_frame(None, "bad_request", "x")))["id"] is None
    # Text orjson refuses (a lone surrogate) still encodes.
    assert orjson.loads(p.encode(p.delta_frame(1, "a\ud800b")))["text"] == "a?b"


def test_token_bucket_allows_a_burst_then_the_rate():
    now = [0.0]
    b = TokenBucket(rate=10, burst=10, clock=lambda: now[0])
    assert all(b.take() for _ in range(10))
    assert not b.take()
    now[0] += 0.1
    assert b.take() and not b.take()
    now[0] += 100
    assert sum(b.take() for _ in range(50)) == 10


def test_admission_rules():
    origins = own_origins(8765)
    ok = dict(token="s3cret-token", allowed_origins=origins)
    assert admit({}, b"", [], **ok).reason == "no token"
    assert admit({"authorization": "Bearer nope"}, b"", [], **ok).reason == "wrong token"
    assert admit({"authorization": "Bearer s3cret-token"}, b"", [], **ok).ok
    assert admit({}, b"token=s3cret-token", [], **ok).ok
    sub = admit({}, b"", ["assistant.v1", "assistant.v1.s3cret-token"], **ok)
    assert sub.ok and sub.subprotocol == "assistant.v1"
    only = admit({}, b"", ["assistant.v1.s3cret-token"], **ok)
    assert only.ok and only.subprotocol == "assistant.v1.s3cret-token"
    good = {"authorization": "Bearer s3cret-token", "origin": "http://localhost:8765"}
    assert admit(good, b"", [], **ok).ok
    bad = dict(good, origin="http://evil.example:8765")
    assert admit(bad, b"", [], **ok).reason == "origin not allowed"
    assert admit(dict(good, origin="null"), b"", [], **ok).reason == "origin not allowed"
