"""``assistant bench --server wss://…`` through Debian's nginx terminating TLS with a private CA
(made here with trustme), in front of ``assistant serve --emulator``: the deployment shape an
operator gates a rollout on. The CA is trusted with ``--cafile`` or ``SSL_CERT_FILE``; without it
the certificate is refused, with exit 2 and a sentence that says what to pass."""

from __future__ import annotations

import pytest
import trustme

from tests.bench_process import bench_against

from .conftest import TOKEN, nginx_in_front_of, start_serve, stop_process

pytestmark = [pytest.mark.nginx, pytest.mark.slow, pytest.mark.timeout(240)]


async def test_bench_gates_a_deployment_behind_nginx_with_tls(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain, key, ca_file = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(chain)
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(chain, append=True)
    cert.private_key_pem.write_to_path(key)
    ca.cert_pem.write_to_path(ca_file)

    proc, ws_url, _ = await start_serve(tmp_path, "--emulator", "--workers", "1")
    try:
        port = int(ws_url.split(":")[2].split("/")[0])
        async with nginx_in_front_of([port], tls=(chain, key)) as tls_port:
            url = f"https://127.0.0.1:{tls_port}"
            run = await bench_against(
                tmp_path / "cafile",
                url,
                "--token",
                TOKEN,
                "--cafile",
                str(ca_file),
                "--typists",
                "4",
                "--window",
                "6",
                "--budget",
                "pause_p95=5000,errors=0,disconnects=0,violations=0",
            )
            assert run.code == 0, run
            r = run.report
            assert r["server"] == f"wss://127.0.0.1:{tls_port}/v1/ws"
            assert r["typists_connected"] == 4 and r["pauses"] > 0
            assert r["model_answers"] > 0 and r["cost_usd"] > 0
            assert run.junit.find("testsuite").get("failures") == "0"

            untrusted = await bench_against(tmp_path / "untrusted", url, "--token", TOKEN)
            assert untrusted.code == 2, untrusted
            assert "certificate" in untrusted.err and "--cafile" in untrusted.err

            from_env = await bench_against(
                tmp_path / "env",
                url,
                "--token",
                TOKEN,
                "--typists",
                "1",
                "--window",
                "3",
                "--budget",
                "errors=0",
                env={"SSL_CERT_FILE": str(ca_file)},
            )
            assert from_env.code == 0, from_env
            assert from_env.report["typists_connected"] == 1
    finally:
        await stop_process(proc)
