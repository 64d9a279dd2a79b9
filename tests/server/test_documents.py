"""Protocol 1.1 over a real socket: open / edit / suggest by version, resync, refused edits, and
the v1 guarantees (one terminal per suggest, nothing stale) with documents kept on the server."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
from pathlib import Path

from server.runner import ServerHandle

from .conftest import client, emulator, make_settings

ROOT = Path(__file__).resolve().parents[2]
TEXT = (
    "Dear Sam, thanks for the quick reply. The report looks good and the team did a great job. "
    "The team did a great job with the new customers. The team"
)


async def open_doc(c, text: str, cursor: int) -> int:
    fid = c.new_id()
    await c.send({"type": "open", "id": fid, "text": text, "cursor": cursor})
    return fid


async def edit(c, base: int, changes: list, cursor: int) -> int:
    fid = c.new_id()
    await c.send({"type": "edit", "id": fid, "base": base, "changes": changes, "cursor": cursor})
    return fid


async def suggest_at(c, version: int) -> int:
    fid = c.new_id()
    await c.send({"type": "suggest", "id": fid, "version": version})
    return fid


async def test_a_suggest_by_version_answers_as_a_v1_suggest_with_the_same_text(offline_server):
    typed = TEXT + " did a"
    async with client(offline_server) as v1:
        expected = await v1.terminal(await v1.suggest(typed, "\nThe end."))
    async with client(offline_server) as c:
        v = await open_doc(c, TEXT + "\nThe end.", len(TEXT))
        v = await edit(c, v, [[len(TEXT), len(TEXT), " did a"]], len(typed))
        done = await c.terminal(await suggest_at(c, v))
    assert expected["type"] == done["type"] == "done"
    assert done["text"] == expected["text"] and done["text"], done
    assert done["source"] == expected["source"] == "offline"


async def test_a_version_mismatch_gets_resync_and_a_fresh_open_recovers(offline_server):
    async with client(offline_server) as c:
        sid = await suggest_at(c, 99)  # nothing open yet
        err = await c.terminal(sid)
        assert (err["type"], err["code"]) == ("error", "resync")
        v = await open_doc(c, "Hello there. Hello", 18)
        eid = await edit(c, v - 1, [[0, 0, "x"]], 0)  # against a version that is not current
        err = await c.terminal(eid)
        assert (err["code"], err["id"]) == ("resync", eid) and "open" in err["message"]
        stale = await c.terminal(await suggest_at(c, eid))  # the refused edit made no version
        assert stale["code"] == "resync"
        ok = await c.terminal(await suggest_at(c, v))  # the copy is as it was
        assert ok["type"] == "done"
        v2 = await open_doc(c, "Hello there. Hello", 18)
        assert (await c.terminal(await suggest_at(c, v2)))["type"] == "done"


async def test_bad_edits_get_clear_errors_and_leave_the_copy_unchanged():
    settings = make_settings(max_prefix_chars=60, max_suffix_chars=40)  # documents up to 100
    async with ServerHandle(settings) as srv, client(srv) as c:
        assert c.ready["protocol_minor"] == 1
        assert c.ready["limits"]["max_document_chars"] == 100
        doc = "The team did well. The team did well. The team "
        v = await open_doc(c, doc, len(doc))
        bad = [
            ({"changes": [[0, 99, "x"]]}, "bad_request", "out of range"),
            ({"changes": [[5, 9, "x"], [7, 8, "y"]]}, "bad_request", "overlaps"),
            ({"changes": [[4, 2, "x"]]}, "bad_request", "ends before"),
            ({"changes": [[1.5, 2, "x"]]}, "bad_request", "integer"),
            ({"changes": [[True, 2, "x"]]}, "bad_request", "integer"),
            ({"changes": [[-1, 2, "x"]]}, "bad_request", "integer"),
            ({"changes": [[0, 0]]}, "bad_request", "[start, end, text]"),
            ({"changes": "all of it"}, "bad_request", "list"),
            ({"changes": [], "cursor": 48}, "bad_request", "cursor 48"),
            ({"changes": [], "cursor": "end"}, "bad_request", "cursor"),
            ({"changes": [[0, 0, "y" * 70]]}, "too_large", "100 characters"),
            ({"changes": [], "base": "one"}, "bad_request", "version"),
            ({"changes": [[0, 0, ""]] * 1025}, "too_large", "1024 changes"),
        ]
        for fields, code, words in bad:
            frame = {"type": "edit", "id": c.new_id(), "base": v, "cursor": 47, **fields}
            await c.send(frame)
            err = await c.terminal(frame["id"])
            assert (err["type"], err["code"], err["id"]) == ("error", code, frame["id"]), fields
            assert words in err["message"], (words, err["message"])
        too_big = c.new_id()
        await c.send({"type": "open", "id": too_big, "text": "z" * 101, "cursor": 0})
        assert (await c.terminal(too_big))["code"] == "too_large"
        lone = '{"type": "open", "id": ID, "text": "\\ud800", "cursor": 0}'.replace(
            "ID", str(c.new_id())
        )
        await c.send(lone)  # a lone surrogate is not JSON text: refused, nothing changes
        assert (await c.until(lambda m: m["type"] == "error"))["code"] == "bad_request"
        # After all that the server's copy is still the opened text, at the opened version.
        done = await c.terminal(await suggest_at(c, v))
        assert done["type"] == "done" and done["text"].startswith("did"), done
        v2 = await edit(c, v, [[47, 47, "did"]], 50)
        assert (await c.terminal(await suggest_at(c, v2)))["type"] == "done"


async def test_a_suggest_can_carry_the_edit_and_its_id_becomes_the_version(offline_server):
    async with client(offline_server) as c:
        doc = "The team did well. The team did well. The team"
        v = await open_doc(c, doc, len(doc))
        sid = c.new_id()
        await c.send(
            {
                "type": "suggest",
                "id": sid,
                "base": v,
                "changes": [[len(doc), len(doc), " "]],
                "cursor": len(doc) + 1,
            }
        )
        done = await c.terminal(sid)
        assert done["type"] == "done" and done["text"].startswith("did"), done
        assert (await c.terminal(await suggest_at(c, sid)))["type"] == "done"  # version = sid
        bad = c.new_id()
        await c.send(
            {"type": "suggest", "id": bad, "base": sid, "changes": [[0, 99, "x"]], "cursor": 0}
        )
        err = await c.terminal(bad)
        assert (err["type"], err["code"]) == ("error", "bad_request")
        stale = c.new_id()
        await c.send({"type": "suggest", "id": stale, "base": v, "changes": [], "cursor": 0})
        assert (await c.terminal(stale))["code"] == "resync"
        assert (await c.terminal(await suggest_at(c, sid)))["type"] == "done"  # unchanged


async def test_every_suggest_gets_one_terminal_and_nothing_stale_after_an_edit():
    """Typing by edits: after the pong for a ping sent behind edit E, no delta or done for a
    suggest older than E ever arrives, and every suggest has exactly one terminal."""
    rng = random.Random(5)
    async with emulator(profile="fast", seed=3) as emu:
        async with ServerHandle(make_settings(emu)) as srv, client(srv) as c:
            version = edit_base = await open_doc(c, "", 0)
            text, sent, edit_before_ping = "", [], {}
            for ch in TEXT[:50]:
                change = [[len(text), len(text), ch]]
                text += ch
                roll = rng.random()
                if roll < 0.5:  # the suggest carries the edit
                    version = c.new_id()
                    await c.send(
                        {
                            "type": "suggest",
                            "id": version,
                            "base": edit_base,
                            "changes": change,
                            "cursor": len(text),
                        }
                    )
                    sent.append(version)
                else:
                    version = await edit(c, edit_base, change, len(text))
                    if roll < 0.8:  # not every keystroke asks
                        sent.append(await suggest_at(c, version))
                edit_base = version
                pid = c.new_id()
                edit_before_ping[pid] = version
                await c.send({"type": "ping", "id": pid})
                await asyncio.sleep(rng.uniform(0.0, 0.02))  # typing pace, not synchronisation
            last = await suggest_at(c, version)
            sent.append(last)
            await c.terminal(last, timeout=15)
            await c.ping()
            floor, terminals = -1, {}
            for frame in c.seen:
                kind, fid = frame["type"], frame.get("id")
                if kind == "pong" and fid in edit_before_ping:
                    floor = max(floor, edit_before_ping[fid])
                elif kind in ("delta", "done"):
                    assert fid >= floor, f"{kind} for {fid} after version {floor} was read"
                if kind in ("done", "cancelled", "error") and fid in sent:
                    terminals.setdefault(fid, []).append(kind)
            assert sorted(terminals) == sorted(sent), "every suggest gets a terminal"
            assert all(v in (["done"], ["cancelled"]) for v in terminals.values()), terminals
            assert terminals[last] == ["done"]


def test_the_doc_sync_bench_runs_and_1_1_sends_a_constant_few_bytes(tmp_path):
    """tools/doc_sync_bench.py end to end on real server processes (a few keystrokes): every
    keystroke answered, and 1.1's bytes up do not grow with the document while v1's do."""
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "doc_sync_bench.py"), "--keys", "12",
         "--warmup", "3", "--sizes", "1000,20000", "--json", str(out)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True,
        timeout=150,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "| 20 KB |" in proc.stdout
    rows = {(r["size"], r["protocol"]): r for r in json.loads(out.read_text())}
    for row in rows.values():
        assert sum(row["answered_by"].values()) == 12 and row["server_cpu_us_per_key"] > 0
    assert rows[(20000, "v1")]["bytes_up_per_key"] > 18_000
    assert rows[(20000, "1.1")]["bytes_up_per_key"] < 200
    assert rows[(1000, "1.1")]["bytes_up_per_key"] < 200


def test_the_ws_floor_tool_runs_every_endpoint(tmp_path):
    """tools/ws_floor.py end to end (a few frames): a figure for each endpoint, and the table."""
    out = tmp_path / "floor.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "ws_floor.py"), "--frames", "20", "--warmup", "5",
         "--v1-chars", "5000", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert set(figures) == {"read", "echo", "task", "timer", "echo-v1"}
    assert all(us > 0 for us in figures.values()), figures
    assert "| echo-v1 | echo, with a v1 frame of a 5,000-character document |" in proc.stdout
