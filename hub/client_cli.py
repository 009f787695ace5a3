"""``wshub call`` / ``subscribe`` / ``publish``: a command-line client the install brings.

One connection per command, to a hub at ``--url`` (or the one ``--config``
describes, or ``$WSHUB_URL``, or ws://127.0.0.1:8765/):

- ``call METHOD [PARAMS]`` sends one JSON-RPC 2.0 request (jsonrpc.2.0) and
  prints its result as one JSON line; an error object goes to stderr and exits 1.
- ``subscribe CHANNEL`` subscribes on channels.v1 and prints each ``message``
  notification's params as a JSON line (``--count N`` stops after N).
- ``publish CHANNEL DATA`` publishes one JSON value on channels.v1 and prints
  the result (its offset and epoch).
- ``presence CHANNEL`` prints the channel's members by user.

``publish`` and ``presence`` go through the server API instead (as the
server: no client rule applies) when an API key is given: ``--api-key``,
``$WSHUB_API_KEY``, or the first of ``[api] keys`` in ``--config``; the API's
URL is ``--api``, ``$WSHUB_API_URL``, the config's ``[api] host``/``port``, or
http://127.0.0.1:8766.

stdout carries JSON only, so the output pipes into ``jq``; what a human needs
(errors, "subscribed to ...") goes to stderr. Exit codes: 0 done, 1 an error
from the hub or the network, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from hub.config import ConfigError, load_config
from hub.errors import HubError

DEFAULT_URL = "ws://127.0.0.1:8765/"
DEFAULT_API_URL = "http://127.0.0.1:8766"
API_VERBS = ("publish", "presence")


class CommandFailed(HubError):
    """What went wrong, for stderr; the command exits 1."""


def build_parser(verb: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"wshub {verb}", description=_DESCRIPTIONS[verb])
    if verb == "call":
        parser.add_argument("method", help="the method name, e.g. math.add")
        parser.add_argument(
            "params", nargs="?", type=_json_arg, help="JSON array or object, e.g. '[1, 2]'"
        )
    else:
        parser.add_argument("channel", help="a channel name (subscribe: or an MQTT-style pattern)")
    if verb == "publish":
        parser.add_argument("data", type=_json_arg, help='a JSON value, e.g. \'{"text": "hi"}\'')
    if verb in API_VERBS:
        parser.add_argument(
            "--api-key", help="publish through the server API with this key ($WSHUB_API_KEY)"
        )
        parser.add_argument(
            "--api", help=f"the server API's URL (default: $WSHUB_API_URL, else {DEFAULT_API_URL})"
        )
    if verb == "publish":
        parser.add_argument(
            "--idempotency-key", help="with the API: a repeat of this key publishes once"
        )
        parser.add_argument(
            "--meta",
            type=_json_arg,
            help='MQTT 5 properties as JSON, e.g. \'{"content_type": "application/json"}\'',
        )
    if verb == "subscribe":
        parser.add_argument(
            "--count", "-n", type=_positive, help="exit after this many messages (default: never)"
        )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--url", help=f"the hub's WebSocket URL (default: $WSHUB_URL, else {DEFAULT_URL})"
    )
    where.add_argument("--config", "-c", type=Path, help="find the hub from this config file")
    parser.add_argument("--token", help="a JWT, sent as Authorization: Bearer")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for each answer (default 10)"
    )
    return parser


_DESCRIPTIONS = {
    "call": "Call one JSON-RPC method and print its result as JSON.",
    "subscribe": "Subscribe to a channel and print each message as a JSON line.",
    "publish": "Publish one JSON value to a channel and print its offset.",
    "presence": "Print who is in a channel, by user.",
}


def client_main(verb: str, argv: Sequence[str]) -> int:
    parser = build_parser(verb)
    args = parser.parse_args(argv)
    if verb == "call" and args.params is not None and not isinstance(args.params, list | dict):
        parser.error("params must be a JSON array or object (JSON-RPC 2.0, section 4.2)")
    try:
        if verb in API_VERBS:
            api = _api_target(args)
            if api is not None:
                return _run_api(verb, args, *api)
        url = _hub_url(args.url, args.config)
        return asyncio.run(_run(verb, args, url))
    except CommandFailed as exc:
        print(f"wshub {verb}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


async def _run(verb: str, args: argparse.Namespace, url: str) -> int:
    subprotocol = "jsonrpc.2.0" if verb == "call" else "channels.v1"
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    try:
        async with connect(
            url,
            subprotocols=[Subprotocol(subprotocol)],
            additional_headers=headers,
            open_timeout=args.timeout,
            max_size=None,
        ) as ws:
            peer = _Peer(ws, args.timeout)
            if verb == "call":
                _print(await peer.request(args.method, args.params))
            elif verb == "publish":
                params = {"channel": args.channel, "data": args.data}
                if args.meta is not None:
                    params["meta"] = args.meta
                _print(await peer.request("publish", params))
            elif verb == "presence":
                _print((await peer.request("presence", {"channel": args.channel}))["members"])
            else:
                await _subscribe(peer, args.channel, args.count)
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        raise CommandFailed(f"cannot reach the hub at {url}: {_reason(exc)}") from None
    except ConnectionClosed as exc:
        raise CommandFailed(f"the hub closed the connection: {_close_reason(exc)}") from None
    return 0


async def _subscribe(peer: _Peer, channel: str, count: int | None) -> None:
    await peer.request("subscribe", {"channel": channel})
    print(f"wshub subscribe: subscribed to {channel}", file=sys.stderr, flush=True)
    received = 0
    while count is None or received < count:
        message = await peer.notification("message")
        _print(message.get("params"))
        received += 1


class _Peer:
    """A JSON-RPC 2.0 client over one connection: one request at a time."""

    def __init__(self, ws: ClientConnection, timeout: float) -> None:
        self.ws = ws
        self.timeout = timeout
        self.next_id = 1
        self.notifications: list[dict[str, Any]] = []

    async def request(self, method: str, params: Any = None) -> Any:
        """Send a request and return its result; an error object raises CommandFailed."""
        request_id = self.next_id
        self.next_id += 1
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        await self.ws.send(json.dumps(request))
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await self._receive()
                    if "method" in message:
                        self.notifications.append(message)
                    elif message.get("id") in (request_id, None):
                        break
        except TimeoutError:
            raise CommandFailed(f"no answer to {method} within {self.timeout:g} s") from None
        if "error" in message:
            raise CommandFailed(_describe_error(message["error"]))
        return message.get("result")

    async def notification(self, method: str) -> dict[str, Any]:
        """The next notification of that method (others are skipped)."""
        while True:
            message = self.notifications.pop(0) if self.notifications else await self._receive()
            if message.get("method") == method:
                return message

    async def _receive(self) -> dict[str, Any]:
        """The next JSON-RPC object; server-to-client calls are answered "Method not found"."""
        while True:
            message = json.loads(await self.ws.recv())
            if not isinstance(message, dict):
                continue
            if "method" in message and "id" in message:
                # A server-to-client call: this client exposes no methods.
                error = {"code": -32601, "message": "Method not found"}
                reply = {"jsonrpc": "2.0", "id": message["id"], "error": error}
                await self.ws.send(json.dumps(reply))
                continue
            return message


def _api_target(args: argparse.Namespace) -> tuple[str, str] | None:
    """The server API's URL and key, when a key is given (else None: use the WebSocket)."""
    key = args.api_key or os.environ.get("WSHUB_API_KEY")
    url = args.api or os.environ.get("WSHUB_API_URL")
    if args.config is not None and (key is None or url is None):
        try:
            api = load_config(args.config).api
        except ConfigError as exc:
            raise CommandFailed(str(exc)) from None
        if key is None and api.keys:
            key = api.keys[0]
        if key is None and api.keys_file is not None:
            from hub.api.keys import KeysFileError, read_keys_file

            try:
                key = next(iter(read_keys_file(api.keys_file)), None)
            except KeysFileError as exc:
                raise CommandFailed(str(exc)) from None
        if url is None:
            host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(api.host, api.host)
            url = f"http://[{host}]:{api.port}" if ":" in host else f"http://{host}:{api.port}"
    if key is None:
        return None
    return url or DEFAULT_API_URL, key


def _run_api(verb: str, args: argparse.Namespace, url: str, key: str) -> int:
    from hub.client import ApiRequestError, ApiUnreachable, SyncApiClient

    api = SyncApiClient(url, key, timeout=args.timeout)
    try:
        if verb == "publish":
            _print(
                api.publish(
                    args.channel,
                    args.data,
                    meta=args.meta,
                    idempotency_key=args.idempotency_key,
                )
            )
        else:
            _print(api.presence(args.channel)["members"])
    except ApiRequestError as exc:
        raise CommandFailed(f"the server API refused: {exc}") from None
    except ApiUnreachable as exc:
        raise CommandFailed(str(exc)) from None
    return 0


def _hub_url(url: str | None, config_path: Path | None) -> str:
    if url is not None:
        return url
    if config_path is None:
        return os.environ.get("WSHUB_URL") or DEFAULT_URL
    try:
        server = load_config(config_path).server
    except ConfigError as exc:
        raise CommandFailed(str(exc)) from None
    # A hub bound to every interface is reached on loopback from here.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(server.host, server.host)
    if ":" in host:
        host = f"[{host}]"
    scheme = "wss" if server.tls is not None else "ws"
    return f"{scheme}://{host}:{server.port}/"


def _describe_error(error: Any) -> str:
    if not isinstance(error, dict):
        return f"error {json.dumps(error)}"
    text = f"error {error.get('code')}: {error.get('message')}"
    if "data" in error:
        text += f" {json.dumps(error['data'], ensure_ascii=False)}"
    return text


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}): {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive count")
    return value


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _close_reason(exc: ConnectionClosed) -> str:
    received = exc.rcvd
    if received is None:
        return "no close frame"
    return f"{received.code} {received.reason}".strip()
