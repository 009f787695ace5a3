"""``wshub`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from hub import collector
from hub.app import Hub
from hub.config import ConfigError, HubConfig, load_config
from hub.config_coherence import coherence_warnings
from hub.errors import StorageError

logger = logging.getLogger("hub")

# Client commands (hub/client_cli.py), imported only when used.
CLIENT_VERBS = ("call", "subscribe", "publish", "presence")


def tcp_port(text: str) -> int:
    """An argparse type: a port number 0-65535 (a bad one exits 2 with usage, no traceback)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0-65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wshub",
        description="WebSocket messaging hub: JSON-RPC 2.0, channels, MQTT and WAMP on one port.",
        epilog=(
            "Other commands: `wshub call METHOD [PARAMS]` calls one JSON-RPC method, "
            "`wshub subscribe CHANNEL` prints a channel's messages as JSON lines, "
            "`wshub publish CHANNEL DATA` publishes one, `wshub presence CHANNEL` prints who "
            "is in it (both through the server API with --api-key or $WSHUB_API_KEY; "
            "each with --help); "
            "`wshub hash-password` prints an argon2id hash for [auth.basic] users."
        ),
    )
    parser.add_argument("--config", "-c", type=Path, help="TOML (or YAML) config file")
    parser.add_argument("--host", help="override server.host")
    parser.add_argument("--port", type=tcp_port, help="override server.port (0: any free port)")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["hash-password"]:
        from hub.auth.command import hash_password_main

        return hash_password_main(argv[1:])
    if argv[:1] and argv[0] in CLIENT_VERBS:
        from hub.client_cli import client_main

        return client_main(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config) if args.config else HubConfig()
    except ConfigError as exc:
        print(f"wshub: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.logging.level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # websockets logs every connection at INFO; keep that for debug runs only.
    if config.logging.level != "debug":
        logging.getLogger("hub.websockets").setLevel(logging.WARNING)
    source = args.config or "defaults"
    try:
        hub = Hub(config)
        hub.load_configured_modules()
    except (ConfigError, ValueError, TypeError, ImportError) as exc:
        print(f"wshub: {source}: {exc}", file=sys.stderr)
        return 2
    problems = hub.server.config_problems()
    if problems:
        print(f"wshub: {source}: " + "; ".join(problems), file=sys.stderr)
        return 2
    if args.check:
        for warning in coherence_warnings(config):
            print(f"wshub: {source}: warning: {warning}", file=sys.stderr)
        print(f"wshub: configuration OK, {len(hub.methods.names)} RPC method(s)")
        return 0
    try:
        asyncio.run(_serve(hub, args.host, args.port))
    except StorageError as exc:
        print(f"wshub: {source}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"wshub: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


def start_hint(url: str, static_dir: Path | None) -> str:
    """What to do next: the page to open on the same port, and how to stop."""
    page = "http" + url.removeprefix("ws")  # ws:// -> http://, wss:// -> https://
    what = "the chat demo" if static_dir is None else f"files of {static_dir}"
    return f"open {page} in a browser ({what}); stop with Ctrl+C"


async def _serve(hub: Hub, host: str | None, port: int | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # SIGHUP re-reads certificates and key files; a bad file is logged and the
    # old one kept (Hub.reload), the hub serves on.
    loop.add_signal_handler(signal.SIGHUP, hub.reload)
    await hub.start(host, port)
    # The startup heap frozen, full collections spaced (hub/collector.py).
    collector.settle()
    logger.info(
        "wshub listening on %s, subprotocols: %s",
        hub.url,
        ", ".join(hub.server.registry.wire_names),
    )
    logger.info("%s", start_hint(hub.url, hub.config.server.static_dir))
    await stop.wait()
    logger.info("shutting down: closing clients with 1001")
    await hub.stop()
