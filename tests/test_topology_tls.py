"""TLS with certificates the test makes (openssl): a redis-server with only a TLS port that asks
for a client certificate, and a private PostgreSQL with ssl=on, both on loopback.

``rediss://...?ssl_ca_certs=CA&ssl_certfile=CERT&ssl_keyfile=KEY`` and PostgreSQL's
``sslmode=verify-full&sslrootcert=CA`` connect and read; a certificate that does not verify gives
one clear line and exit 3.
"""
from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
import redis

from tests import pgboss_helpers as h
from tests.fixed_data import write_fixed_queue
from tests.cli_harness import isolated_env, run  # noqa: F401 (isolated_env: autouse)
from tests.topology_servers import Certificates, PrivatePostgres, TlsRedis


@pytest.fixture(scope="module")
def certs():
    c = Certificates()
    yield c
    c.close()


def one_line(err: str, *words: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("queue-console: ") and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], (word, err)
    return lines[0]


@pytest.mark.timeout(60)
def test_rediss_with_ca_and_client_certificate(certs, capsys):
    server = TlsRedis(certs)
    try:
        client = redis.Redis(host="127.0.0.1", port=server.port, ssl=True, ssl_ca_certs=certs.ca,
                             ssl_certfile=certs.client_cert, ssl_keyfile=certs.client_key, socket_timeout=5)
        write_fixed_queue(client, "qct", "emails", failed=3, completed=2, waiting=1, delayed=0)
        client.close()
        base = f"rediss://:tls-secret-x@127.0.0.1:{server.port}/0?"
        mine = {"ssl_certfile": certs.client_cert, "ssl_keyfile": certs.client_key}
        url = base + urlencode({"ssl_ca_certs": certs.ca, **mine})

        code, out, err = run(capsys, "status", "--json", "--url", url, "--prefix", "qct")
        assert code == 0, err
        [rec] = json.loads(out)["queues"]
        assert (rec["queue"], rec["counts"]["failed"], rec["counts"]["waiting"]) == ("emails", 3, 1)
        assert "tls-secret-x" not in out + err

        # a CA that did not sign the server's certificate: one line, exit 3
        code, out, err = run(capsys, "status", "--url", base + urlencode({"ssl_ca_certs": certs.other_ca, **mine}))
        assert code == 3 and out == ""
        one_line(err, f"127.0.0.1:{server.port}", "TLS certificate", "did not verify")
        assert "tls-secret-x" not in err
        # no client certificate: the server (tls-auth-clients yes) ends the handshake
        code, out, err = run(capsys, "status", "--url", base + urlencode({"ssl_ca_certs": certs.ca}))
        assert code == 3 and out == ""
        one_line(err, f"127.0.0.1:{server.port}")
    finally:
        server.close()


async def _pg_setup(url: str, schema: str) -> None:
    await h.install(url, "v12", schema)
    async with h.admin(url) as conn:
        await h.create_queue(conn, schema, "work")
        await h.add_job(conn, schema, "work", "failed", started_s=-40, completed_s=-30)


@pytest.mark.timeout(90)
def test_postgres_sslmode_verify_full(certs, capsys):
    import asyncio

    from tests.topology_servers import _unprivileged

    _, uid, gid = _unprivileged()
    key = certs.key_for(uid, gid)
    server = PrivatePostgres(conf=f"ssl = on\nssl_cert_file = '{certs.server_cert}'\nssl_key_file = '{key}'\n")
    try:
        schema = h.new_schema("v12")
        asyncio.run(_pg_setup(server.url, schema))
        base = f"postgresql://postgres@localhost:{server.port}/postgres?"
        url = base + urlencode({"sslmode": "verify-full", "sslrootcert": certs.ca})
        code, out, err = run(capsys, "status", "--json", "--url", url, "--schema", schema)
        assert code == 0, err
        [rec] = json.loads(out)["queues"]
        assert rec["counts"]["failed"] == 1

        async def ssl_in_use() -> bool:
            from backends.registry import ConnectOptions, open_readers

            [reader] = await open_readers(url, ConnectOptions(schema=schema))
            try:
                return await reader.pool.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            finally:
                await reader.close()

        assert asyncio.run(ssl_in_use()) is True

        code, out, err = run(capsys, "status", "--url",
                             base + urlencode({"sslmode": "verify-full", "sslrootcert": certs.other_ca}))
        assert code == 3 and out == ""
        one_line(err, f"localhost:{server.port}", "TLS certificate", "did not verify")
    finally:
        server.close()
