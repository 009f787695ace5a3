"""HTTP fallback transports (docs/fallback.md).

* :mod:`hub.fallback.wire`: pure encodings (SSE events, NDJSON, positions, session tokens).
* :mod:`hub.fallback.session`: a Session over an HTTP stream, with bounded queues.
* :mod:`hub.fallback.driver`: runs a protocol handler over it, as hub.server runs a WebSocket.
* :mod:`hub.fallback.unidirectional`: streams of channels named in the URL.
* :mod:`hub.fallback.server`: the aiohttp listener, and POSTs routed to the session's node.
"""

from hub.fallback.server import FallbackServer

__all__ = ["FallbackServer"]
