"""wss:// for the hub's port: the server's TLS context and certificate reloading.

The listening socket keeps one ``SSLContext`` for its life. Its SNI callback,
which OpenSSL runs for every ClientHello (with or without a server name), hands
the handshake the newest certificate context. Reloading builds a whole new
context from the files and swaps one reference, so a handshake sees either the
old certificate or the new one, never half of each, and a bad file changes
nothing. Established connections keep the session they negotiated.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from hub.config import TlsConfig
from hub.errors import HubError

MIN_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


class TlsError(HubError, ValueError):
    """The certificate or key cannot be used; the message names the files and why."""


def server_context(config: TlsConfig) -> ssl.SSLContext:
    """A server context for the configured certificate chain and key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MIN_VERSIONS[config.min_version]
    # WebSocket runs over HTTP/1.1; announcing it keeps ALPN-aware clients honest.
    context.set_alpn_protocols(["http/1.1"])
    for path in (config.cert_file, config.key_file):
        # OpenSSL's own error would not say which file is missing.
        if not path.is_file():
            raise TlsError(f"server.tls: {path}: no such file")
    try:
        context.load_cert_chain(config.cert_file, config.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(
            f"server.tls: cannot use certificate {config.cert_file} with key "
            f"{config.key_file}: {_describe(exc)}"
        ) from None
    return context


def _describe(exc: Exception) -> str:
    if isinstance(exc, ssl.SSLError):
        if exc.reason == "KEY_VALUES_MISMATCH":
            return "the key does not belong to the certificate"
        if exc.reason is None and "PEM lib" in str(exc):
            return "not a PEM certificate chain and private key"
        if exc.reason:
            return exc.reason.lower().replace("_", " ")
    return str(exc)


class ServerTls:
    """The listening context, and the certificate new handshakes are given."""

    def __init__(self, config: TlsConfig) -> None:
        self._config = config
        self._current = server_context(config)
        self.context = self._current
        self.context.sni_callback = self._choose_context

    @property
    def cert_file(self) -> Path:
        return self._config.cert_file

    def reload(self) -> None:
        """Re-read the certificate and key; on any error keep serving the old ones."""
        self._current = server_context(self._config)

    def _choose_context(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        # Swapping the context here is how Python lets a server pick a
        # certificate per handshake; the protocol limits stay the listener's.
        connection.context = self._current
