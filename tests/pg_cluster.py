"""A private PostgreSQL cluster for a test: Debian's initdb and postgres (``.ci/setup-postgres.sh``
installs them) in a temp directory, the server a child of the test on a free 127.0.0.1 port,
ready once it says so on its log, killed at the end. The packaged service is never used.

As root (containers), the cluster runs as the ``postgres`` user, which initdb insists on.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path


def pg_bin() -> Path | None:
    """Debian's PostgreSQL binaries (the newest installed), or $ASSISTANT_PG_BIN."""
    env = os.environ.get("ASSISTANT_PG_BIN")
    if env:
        return Path(env) if (Path(env) / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return Path(found[-1]).parent if found else None


def _version(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


MISSING = "Debian's postgresql is missing: run .ci/setup-postgres.sh (apt-get install postgresql)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def cluster(database: str = "ledger") -> Iterator[str]:
    """A running cluster with ``database`` created; yields its postgresql:// URL."""
    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError(MISSING)
    as_root = os.getuid() == 0
    prefix: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="assistant-pg-"))
    if as_root:
        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    port = _free_port()
    proc = None
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "assistant",
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        proc = subprocess.Popen(
            [*prefix, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
             "-k", str(base), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
             "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        ready = threading.Event()
        log: list[str] = []

        def read_log() -> None:
            for line in proc.stderr:
                log.append(line)
                if "ready to accept connections" in line:
                    ready.set()
            ready.set()  # it exited: stop waiting

        threading.Thread(target=read_log, daemon=True).start()
        if not ready.wait(60) or proc.poll() is not None:
            raise RuntimeError("postgres did not start: " + "".join(log[-20:]))
        import psycopg

        with psycopg.connect(
            f"postgresql://assistant@127.0.0.1:{port}/postgres", autocommit=True
        ) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        yield f"postgresql://assistant@127.0.0.1:{port}/{database}"
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()  # SIGTERM: smart shutdown; the test's clients are gone by now
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base, ignore_errors=True)
