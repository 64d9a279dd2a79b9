"""Scale-out tests: ``assistant serve`` as real processes (several workers, several servers) and
Debian's nginx in front of them.

Tests marked ``nginx`` are skipped, with the reason, when /usr/sbin/nginx is missing
(``.ci/setup-nginx.sh`` installs it; ``.ci/run`` does so before the tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests import serve_process
from tests.serve_process import stop_process  # noqa: F401  (the tests import it from here)

ROOT = Path(__file__).resolve().parents[2]
NGINX = Path(os.environ.get("ASSISTANT_NGINX", "/usr/sbin/nginx"))
TOKEN = "scale-token-abcdef123456"
_HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "nginx: runs Debian's nginx in front of the servers")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(
        reason=f"{NGINX} is missing: run .ci/setup-nginx.sh (apt-get install nginx)"
    )
    for item in items:
        if Path(str(item.fspath)).resolve().parent == _HERE and "nginx" in item.keywords:
            if not NGINX.exists():
                item.add_marker(skip)


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


async def start_serve(
    tmp_path: Path, *extra: str, own_group: bool = False
) -> tuple[asyncio.subprocess.Process, str, str]:
    """``assistant serve --port 0 *extra`` (offline, statistical, token TOKEN)."""
    return await serve_process.start_serve(tmp_path, *extra, token=TOKEN, own_group=own_group)


def nginx_config(
    prefix: Path, port: int, upstreams: list[int], tls: tuple[Path, Path] | None = None
) -> str:
    """docs/deployment.md's configuration, with a private prefix, pid file and temp paths;
    ``tls``: (certificate chain, key) PEM files to listen with TLS, as in production."""
    servers = "\n".join(
        f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in upstreams
    )
    temp = "\n".join(
        f"    {kind}_temp_path {prefix}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root root;\n" if os.geteuid() == 0 else ""
    listen = f"listen 127.0.0.1:{port};"
    if tls is not None:
        cert, key = tls
        listen = (
            f"listen 127.0.0.1:{port} ssl;\n"
            f"        ssl_certificate {cert};\n"
            f"        ssl_certificate_key {key};"
        )
    return f"""{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream assistant {{
{servers}
    }}
    server {{
        {listen}
        location / {{
            proxy_pass http://assistant;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_connect_timeout 2s;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
            proxy_buffering off;
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _accepting(port: int, proc: asyncio.subprocess.Process) -> bool:
    """Until nginx accepts on ``port`` (True) or exits (False)."""
    while proc.returncode is None:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)  # readiness poll of a process that prints nothing
            continue
        writer.close()
        return True
    return False


@contextlib.asynccontextmanager
async def nginx_in_front_of(upstreams: list[int], tls: tuple[Path, Path] | None = None):
    """Debian's nginx as a non-daemon child with its own prefix; yields its port. ``tls``:
    (certificate chain, key) PEM files: it listens with TLS."""
    with tempfile.TemporaryDirectory(prefix="assistant-nginx-") as tmp:
        prefix = Path(tmp)
        for attempt in range(3):  # the free port may be taken between choosing and binding
            port = _free_port()
            conf = prefix / "nginx.conf"
            conf.write_text(nginx_config(prefix, port, upstreams, tls))
            proc = await asyncio.create_subprocess_exec(
                str(NGINX),
                "-e",
                "stderr",  # not the packaged /var/log/nginx, which a non-root user cannot open
                "-p",
                str(prefix),
                "-c",
                str(conf),
                "-g",
                "daemon off;",
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                up = await asyncio.wait_for(_accepting(port, proc), 30)
            except BaseException:
                await stop_process(proc)
                raise
            if up:
                break
            err = (await proc.stderr.read()).decode()
            if attempt == 2:
                raise AssertionError(f"nginx did not start: {err}")
        try:
            yield port
        finally:
            if proc.returncode is None:
                proc.terminate()  # nginx: SIGTERM is a fast shutdown
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    await stop_process(proc)
