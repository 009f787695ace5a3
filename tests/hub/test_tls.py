"""wss://: TLS 1.2+ from PEM files, plain connections refused, certificates reloaded live."""

from __future__ import annotations

import asyncio
import logging
import re
import signal
import ssl
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidMessage

from hub import Hub, HubConfig
from hub.tls import TlsError

LISTENING = re.compile(r"wshub listening on (wss://\S+?),")


class Certificates:
    """A throwaway CA and the hub's certificate files, which tests may rewrite."""

    def __init__(self, directory: Path) -> None:
        self.ca = trustme.CA()
        self.cert_file = directory / "hub.crt"
        self.key_file = directory / "hub.key"

    def issue(self, organization: str) -> None:
        """(Re)write the hub's files with a new leaf certificate naming ``organization``."""
        leaf = self.ca.issue_cert("127.0.0.1", "localhost", organization_name=organization)
        self.cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        self.key_file.write_bytes(leaf.private_key_pem.bytes())

    def client_context(self, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        """A client trusting only our CA, optionally pinned to one TLS version."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(context)
        if version is not None:
            # TLS 1.1 is deprecated (and below OpenSSL's default security level):
            # this client speaks it anyway, to see the hub refuse it.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                context.minimum_version = context.maximum_version = version
            context.set_ciphers("DEFAULT:@SECLEVEL=0")
        return context

    def config(self, **tls: Any) -> dict[str, Any]:
        return {"server": {"tls": {"cert_file": self.cert_file, "key_file": self.key_file, **tls}}}


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    certs = Certificates(tmp_path)
    certs.issue("first")
    return certs


def organization(ws: ClientConnection) -> str:
    """The organization named by the certificate the server presented."""
    peercert = ws.transport.get_extra_info("peercert")
    for rdn in peercert["subject"]:
        for key, value in rdn:
            if key == "organizationName":
                return str(value)
    raise AssertionError(f"no organization in {peercert['subject']}")


async def tls_version_accepted(port: int, context: ssl.SSLContext) -> str | None:
    """The TLS version a bare handshake settles on, or None when the server refuses it."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    except (ssl.SSLError, ConnectionError):
        return None
    version = writer.get_extra_info("ssl_object").version()
    writer.close()
    return str(version)


async def test_wss_handshake_with_a_trusted_ca(make_hub, jsonrpc, certs: Certificates) -> None:
    """With [server.tls] the hub speaks wss://, reports it in url, and serves JSON-RPC over it."""
    hub = await make_hub(certs.config())

    @hub.rpc("ping")
    async def ping() -> str:
        return "pong"

    assert hub.url == f"wss://127.0.0.1:{hub.port}/"
    peer = await jsonrpc(hub, ssl=certs.client_context())
    assert await peer.call("ping") == "pong"
    assert organization(peer.ws) == "first"


async def test_plain_ws_to_the_tls_port_is_refused(make_hub, connect, certs) -> None:
    """A ws:// client gets no WebSocket from the TLS port, and the hub serves on."""
    hub = await make_hub(certs.config())
    plain_url = hub.url.replace("wss://", "ws://")
    with pytest.raises((InvalidMessage, ConnectionError, EOFError)):
        await connect(plain_url)
    assert organization(await connect(hub, ssl=certs.client_context())) == "first"


async def test_tls_versions_below_the_minimum_are_refused(make_hub, certs) -> None:
    """Default: TLS 1.1 refused, 1.2 and 1.3 accepted; min_version 1.3 refuses 1.2 too."""
    versions = ssl.TLSVersion
    default = await make_hub(certs.config())
    strict = await make_hub(certs.config(min_version="1.3"))
    tls11 = certs.client_context(versions.TLSv1_1)
    assert await tls_version_accepted(default.port, tls11) is None
    assert await tls_version_accepted(default.port, certs.client_context(versions.TLSv1_2)) == (
        "TLSv1.2"
    )
    assert await tls_version_accepted(strict.port, certs.client_context(versions.TLSv1_2)) is None
    assert await tls_version_accepted(strict.port, certs.client_context()) == "TLSv1.3"

    # The TLS 1.1 client is able: a server that allows 1.1 completes its handshake.
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    permissive.load_cert_chain(certs.cert_file, certs.key_file)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        permissive.minimum_version = versions.TLSv1_1
    permissive.set_ciphers("DEFAULT:@SECLEVEL=0")

    async def close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    control = await asyncio.start_server(close, "127.0.0.1", 0, ssl=permissive)
    try:
        port = control.sockets[0].getsockname()[1]
        assert await tls_version_accepted(port, tls11) == "TLSv1.1"
    finally:
        control.close()
        await control.wait_closed()


async def test_reload_serves_the_new_certificate_to_new_clients(
    make_hub, connect, jsonrpc, certs: Certificates
) -> None:
    """After hub.reload() new handshakes get the new certificate; open connections live on."""
    hub = await make_hub(certs.config())

    @hub.rpc("ping")
    async def ping() -> str:
        return "pong"

    before = await jsonrpc(hub, ssl=certs.client_context())
    assert organization(before.ws) == "first"
    certs.issue("second")
    # Files changed but not reloaded: still the first certificate.
    assert organization(await connect(hub, ssl=certs.client_context())) == "first"
    assert hub.reload() == []
    after = await connect(hub, ssl=certs.client_context())
    assert organization(after) == "second"
    assert await before.call("ping") == "pong"
    reloads = hub.metrics.registry.get_sample_value("wshub_tls_reloads_total", {"outcome": "ok"})
    assert reloads == 1


async def test_a_bad_file_keeps_the_old_certificate(
    make_hub, connect, certs: Certificates, caplog: pytest.LogCaptureFixture
) -> None:
    """A key that does not load (or match) is reported and logged; the old certificate stays."""
    hub = await make_hub(certs.config())
    good_key = certs.key_file.read_bytes()
    certs.key_file.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with caplog.at_level(logging.ERROR, logger="hub.app"):
        problems = hub.reload()
    assert len(problems) == 1
    assert "TLS certificate" in problems[0]
    assert str(certs.cert_file) in problems[0]
    assert "keeping the previous one" in caplog.text
    # A certificate whose key belongs to another one: refused too.
    Certificates(certs.cert_file.parent).issue("unrelated")  # overwrites both files...
    certs.key_file.write_bytes(good_key)  # ...then the first key comes back
    (mismatch,) = hub.reload()
    assert "the key does not belong to the certificate" in mismatch
    assert organization(await connect(hub, ssl=certs.client_context())) == "first"
    errors = hub.metrics.registry.get_sample_value("wshub_tls_reloads_total", {"outcome": "error"})
    assert errors == 2


async def test_unusable_files_fail_at_start(certs: Certificates, tmp_path: Path) -> None:
    """A missing or broken certificate stops Hub() with a message naming the file."""
    missing = certs.config()
    missing["server"]["tls"]["cert_file"] = tmp_path / "nope.crt"
    with pytest.raises(TlsError, match=r"nope\.crt"):
        Hub(HubConfig.model_validate(missing))
    certs.cert_file.write_text("garbage")
    with pytest.raises(TlsError, match=r"hub\.crt .*not a PEM certificate"):
        Hub(HubConfig.model_validate(certs.config()))


async def test_sighup_reloads_the_certificate_of_a_running_wshub(
    certs: Certificates, tmp_path: Path, connect
) -> None:
    """`wshub --config` reloads its certificate on SIGHUP; the next client sees the new one."""
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[server]\nport = 0\n[server.tls]\ncert_file = "{certs.cert_file.name}"\n'
        f'key_file = "{certs.key_file.name}"\n'
    )
    wshub = Path(sys.executable).parent / "wshub"
    process = await asyncio.create_subprocess_exec(
        str(wshub), "--config", str(config), stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    log: list[str] = []

    async def read_until(pattern: str) -> re.Match[str]:
        async with asyncio.timeout(20):
            while True:
                line = (await process.stderr.readline()).decode()
                assert line, f"wshub exited: {''.join(log)}"
                log.append(line)
                if found := re.search(pattern, line):
                    return found

    try:
        url = (await read_until(LISTENING.pattern)).group(1)
        assert organization(await connect(url, ssl=certs.client_context())) == "first"
        certs.issue("second")
        process.send_signal(signal.SIGHUP)
        await read_until("reloaded TLS certificate")
        assert organization(await connect(url, ssl=certs.client_context())) == "second"
        assert process.returncode is None
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            await process.wait()


async def test_wshub_check_names_a_bad_certificate(certs: Certificates, tmp_path: Path) -> None:
    """`wshub --check` exits 2 with one line naming the unusable file, no traceback."""
    certs.key_file.write_text("not a key")
    config = tmp_path / "hub.toml"
    config.write_text(
        f'[server.tls]\ncert_file = "{certs.cert_file.name}"\nkey_file = "{certs.key_file.name}"\n'
    )
    wshub = Path(sys.executable).parent / "wshub"
    process = await asyncio.create_subprocess_exec(
        str(wshub), "--config", str(config), "--check", stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(20):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    message = stderr.decode()
    assert "Traceback" not in message
    assert message.startswith("wshub: ")
    assert "server.tls: cannot use certificate" in message
    assert str(certs.key_file) in message
