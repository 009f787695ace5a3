"""MQTT's retain flag on top of the hub's retained store (``hub.retained``)."""

from __future__ import annotations

from hub.engine import Publication
from hub.engine.retained import RetainedStore
from protocols.mqtt.frames import payload, published_qos
from protocols.mqtt.session import SessionState


async def keep_retained(store: RetainedStore, publication: Publication) -> None:
    """A PUBLISH with RETAIN: keep it, or clear the topic when the payload is empty."""
    if payload(publication):
        await store.set(publication)
    else:
        await store.delete(publication.channel)


def send_retained(state: SessionState, retained: list[Publication], granted: int) -> None:
    """On a new subscription, send what is retained under its filter with RETAIN set.

    ``retained`` is ``await store.match(filter)``, read before the SUBACK so
    that a store that cannot be read (Redis away) refuses the filter instead.
    """
    for publication in retained:
        qos = min(granted, published_qos(publication, state.limits.default_qos))
        state.send_publication(publication, qos, retain=True)
