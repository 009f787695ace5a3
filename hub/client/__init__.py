"""Python clients of a wshub hub (docs/api.md, docs/channels.md).

* :class:`ApiClient` / :class:`SyncApiClient`: the server API over HTTP, for backends.
* :class:`ChannelsClient`: a ``channels.v1`` WebSocket client for workers
  (subscribe with recovery, presence, history, publish, RPC).
"""

from hub.client.api import ApiClient, SyncApiClient
from hub.client.channels import ChannelsClient, Subscription
from hub.client.errors import ApiRequestError, ApiUnreachable, CallError, ClientError, Disconnected

__all__ = [
    "ApiClient",
    "ApiRequestError",
    "ApiUnreachable",
    "CallError",
    "ChannelsClient",
    "ClientError",
    "Disconnected",
    "Subscription",
    "SyncApiClient",
]
