"""Unidirectional streams read by curl: SSE (GET /events) and NDJSON (GET /stream)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from hub import Hub
from hub.errors import PermissionDenied
from hub.rpc import CallContext
from tests.fallback.conftest import FallbackHubFactory, fallback_url


class Curl:
    """``curl -N``: a stream read line by line as it arrives."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self, timeout: float = 5.0) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            raw = await self.process.stdout.readline()
        if not raw:
            raise EOFError("curl's stream ended")
        return raw.decode().rstrip("\n")

    async def event(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next SSE event as {event, data, id}; comments are skipped."""
        fields: dict[str, Any] = {"event": "message", "id": None}
        while True:
            line = await self.line(timeout)
            if not line:
                if "data" in fields:
                    fields["data"] = json.loads(fields["data"])
                    return fields
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value

    async def json_line(self, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            line = await self.line(timeout)
            if line:
                value: dict[str, Any] = json.loads(line)
                return value


CurlOpener = Callable[..., Awaitable[Curl]]


@pytest.fixture
async def curl_stream() -> AsyncIterator[CurlOpener]:
    """``await curl_stream(url, *headers)``: a curl reading the stream; killed after the test."""
    processes: list[asyncio.subprocess.Process] = []

    async def open_stream(url: str, *headers: str) -> Curl:
        command = ["curl", "-sN", "--max-time", "30", url]
        for header in headers:
            command += ["-H", header]
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        processes.append(process)
        return Curl(process)

    yield open_stream
    for process in processes:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def status_of(url: str, *headers: str) -> tuple[int, str]:
    """curl's status and body for a request that is refused (no stream)."""
    command = ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "5", url]
    for header in headers:
        command += ["-H", header]
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    body, _, status = out.decode().rpartition("\n")
    return int(status), body


async def test_curl_reads_the_sse_stream(
    fallback_hub: FallbackHubFactory, curl_stream: CurlOpener
) -> None:
    """curl gets a ``subscribed`` event, then each publication as an event, its position the id."""
    hub: Hub = await fallback_hub()
    curl = await curl_stream(f"{fallback_url(hub)}/events?channel=news&channel=sport")
    subscribed = [await curl.event(), await curl.event()]
    assert [e["event"] for e in subscribed] == ["subscribed", "subscribed"]
    assert {e["data"]["channel"] for e in subscribed} == {"news", "sport"}
    publication = await hub.publish("news", {"headline": "hi"})
    event = await curl.event()
    assert event["event"] == "message"
    assert event["data"]["data"] == {"headline": "hi"}
    assert event["data"]["offset"] == publication.offset
    assert json.loads(event["id"])["news"] == [publication.offset, publication.epoch]


async def test_last_event_id_recovers_missed_publications(
    fallback_hub: FallbackHubFactory, curl_stream: CurlOpener
) -> None:
    """A stream reopened with the last event's id as Last-Event-ID gets what it missed, in order."""
    hub = await fallback_hub()
    url = f"{fallback_url(hub)}/events?channel=news"
    first = await curl_stream(url)
    await first.event()
    await hub.publish("news", 1)
    last_id = (await first.event())["id"]
    first.process.kill()
    for n in (2, 3, 4):
        await hub.publish("news", n)
    again = await curl_stream(url, f"Last-Event-ID: {last_id}")
    subscribed = await again.event()
    assert subscribed["data"]["recovered"] is True
    assert [(await again.event())["data"]["data"] for _ in range(3)] == [2, 3, 4]


async def test_ndjson_stream_from_an_offset(
    fallback_hub: FallbackHubFactory, curl_stream: CurlOpener
) -> None:
    """GET /stream writes one JSON object a line, resuming after ?offset=&epoch=."""
    hub = await fallback_hub()
    first = await hub.publish("ticks", "a")
    await hub.publish("ticks", "b")
    url = f"{fallback_url(hub)}/stream?channel=ticks&offset={first.offset}&epoch={first.epoch}"
    curl = await curl_stream(url)
    subscribed = await curl.json_line()
    assert subscribed["event"] == "subscribed"
    assert subscribed["recovered"] is True
    recovered = await curl.json_line()
    assert (recovered["event"], recovered["data"]) == ("message", "b")
    await hub.publish("ticks", "c")
    live = await curl.json_line()
    assert (live["data"], live["channel"]) == ("c", "ticks")


async def test_patterns_stream_without_positions(
    fallback_hub: FallbackHubFactory, curl_stream: CurlOpener
) -> None:
    """A pattern channel streams the concrete channels' publications."""
    hub = await fallback_hub()
    curl = await curl_stream(f"{fallback_url(hub)}/stream?channel=sensors/%2B/temp")
    assert (await curl.json_line())["event"] == "subscribed"
    await hub.publish("sensors/kitchen/temp", 21)
    line = await curl.json_line()
    assert (line["channel"], line["data"], line["subscription"]) == (
        "sensors/kitchen/temp",
        21,
        "sensors/+/temp",
    )


async def test_access_is_checked_like_a_subscribe(fallback_hub: FallbackHubFactory) -> None:
    """A subscribe hook's refusal is a 403 naming the channel; nothing is streamed."""
    hub = await fallback_hub()

    @hub.on_subscribe("secret/#")
    async def refuse(ctx: CallContext, channel: str) -> None:
        raise PermissionDenied("no")

    status, body = await status_of(f"{fallback_url(hub)}/events?channel=open&channel=secret/x")
    assert status == 403
    assert "secret/x" in body
    assert hub.session_ids == []


async def test_bad_stream_requests(fallback_hub: FallbackHubFactory) -> None:
    """No channel, a channel twice, a bad name, Last-Event-ID or offset: 400 with the reason."""
    hub = await fallback_hub()
    base = fallback_url(hub)
    cases = [
        (f"{base}/events", (), "channel"),
        (f"{base}/events?channel=a&channel=a", (), "twice"),
        (f"{base}/events?channel=a/%23/b", (), "a/#/b"),
        (f"{base}/events?channel=a", ("Last-Event-ID: nope",), "Last-Event-ID"),
        (f"{base}/events?channel=a", ('Last-Event-ID: {"a": [1]}',), "offset, epoch"),
        (f"{base}/stream?channel=a&channel=b&offset=1", (), "single channel"),
        (f"{base}/stream?channel=a&offset=x", (), "not a number"),
    ]
    for url, headers, reason in cases:
        status, body = await status_of(url, *headers)
        assert status == 400, (url, status, body)
        assert reason in body, (url, body)
