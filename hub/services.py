"""Background services that live as long as the hub: started with it, stopped with it.

A protocol registers its services when a hub is built (``ProtocolSpec.setup``),
e.g. MQTT's session store and its bridge to an upstream broker. A service that
has a ``health()`` method is reported under ``services`` in ``/healthz``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

logger = logging.getLogger(__name__)

Status = Literal["ok", "degraded", "down"]
# Worst first: the hub's status is the worst of its services'.
_SEVERITY: dict[str, int] = {"ok": 0, "degraded": 1, "down": 2}


class Service(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class ReportsHealth(Protocol):
    def health(self) -> Mapping[str, Any]:
        """A JSON object with at least ``status``: "ok", "degraded" or "down"."""


S = TypeVar("S")


class Services:
    """Named services, started in registration order and stopped in reverse."""

    def __init__(self) -> None:
        self._services: dict[str, Service] = {}
        self._started: list[str] = []

    def add(self, name: str, service: Service) -> None:
        if name in self._services:
            raise ValueError(f"a service named {name!r} is already registered")
        if self._started:
            raise RuntimeError(f"cannot add {name!r}: the services are already running")
        self._services[name] = service

    def get(self, name: str, kind: type[S]) -> S:
        """The service registered as ``name``, checked to be a ``kind``."""
        service = self._services.get(name)
        if service is None:
            raise LookupError(f"no service named {name!r}")
        if not isinstance(service, kind):
            raise TypeError(f"service {name!r} is a {type(service).__name__}, not {kind.__name__}")
        return service

    def __contains__(self, name: object) -> bool:
        return name in self._services

    async def start(self) -> None:
        """Start every service; if one fails, stop those already started and re-raise."""
        for name, service in self._services.items():
            if name in self._started:
                continue
            try:
                await service.start()
            except BaseException:
                await self.stop()
                raise
            self._started.append(name)

    async def stop(self) -> None:
        """Stop the started services, last first; one failing does not keep others running."""
        while self._started:
            name = self._started.pop()
            try:
                await self._services[name].stop()
            except Exception:
                logger.exception("service %s failed to stop", name)

    def health(self) -> dict[str, Mapping[str, Any]]:
        return {
            name: service.health()
            for name, service in self._services.items()
            if isinstance(service, ReportsHealth)
        }

    def status(self) -> Status:
        """The worst status any service reports ("ok" with none)."""
        worst: Status = "ok"
        for report in self.health().values():
            status = report.get("status", "ok")
            if _SEVERITY.get(status, 0) > _SEVERITY[worst]:
                worst = status
        return worst
