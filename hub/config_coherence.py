"""Settings valid one by one that work against each other: warnings, not errors.

``wshub --check`` prints them and the hub logs them at start. The outbound
budget (``limits.max_outbound_bytes``) is a hard bound: a message that does not
fit it is never buffered (hub/session.py). A size limit above it admits
messages the hub can receive but never send back.

They are warnings, not errors: the hub still behaves well (an RPC result too
large is answered with an error, a publication too large closes its subscribers
with 1009 and a reason naming the budget), and the limits bound different
directions: a hub may accept uploads larger than anything it sends back.
"""

from __future__ import annotations

from hub.config import HubConfig


def coherence_warnings(config: HubConfig) -> list[str]:
    budget = config.limits.max_outbound_bytes
    inbound = {"websocket.max_message_size": config.websocket.max_message_size}
    for protocol, size in config.limits.max_message_size.items():
        inbound[f"limits.max_message_size.{protocol}"] = size
    payloads = {"channels.default.max_payload_bytes": config.channels.default.max_payload_bytes}
    for prefix, namespace in config.channels.namespaces.items():
        payloads[f"channels.namespaces.{prefix}.max_payload_bytes"] = namespace.max_payload_bytes
    warnings = [
        f"{key} ({size}) is larger than limits.max_outbound_bytes ({budget}): a message "
        f"that large is received but never sent back (an RPC result that large gets the "
        f"error 'reply too large', a publication that large closes its subscribers with "
        f"1009); set limits.max_outbound_bytes to at least {size}, or lower {key}"
        for key, size in inbound.items()
        if size > budget
    ]
    warnings += [
        f"{key} ({size}) is larger than limits.max_outbound_bytes ({budget}): a publication "
        f"that large closes every subscriber with 1009; set limits.max_outbound_bytes above "
        f"{size}, or lower {key}"
        for key, size in payloads.items()
        if size > budget
    ]
    return warnings
