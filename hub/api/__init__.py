"""The server API: HTTP JSON for backends in any language (docs/api.md).

* :mod:`hub.api.models`: requests and results (pydantic), also the OpenAPI document.
* :mod:`hub.api.methods`: what each method does, over the hub's interfaces.
* :mod:`hub.api.cluster`: commands and figures across every node.
* :mod:`hub.api.server`: the aiohttp listener, API keys, body bounds.
"""

from hub.api.cluster import ClusterControl
from hub.api.errors import ApiError
from hub.api.keys import ApiKeys
from hub.api.methods import ApiMethods
from hub.api.server import ApiServer

__all__ = ["ApiError", "ApiKeys", "ApiMethods", "ApiServer", "ClusterControl"]
