"""Subprotocol registry and ``Sec-WebSocket-Protocol`` negotiation."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Sequence
from importlib.metadata import entry_points

from hub.errors import HubError
from hub.handler import ProtocolSpec

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "wshub.protocols"


class NegotiationRefused(HubError):
    """The client offered only subprotocols this server does not speak."""


class ProtocolRegistry:
    """Maps every wire name (and alias) to its :class:`ProtocolSpec`."""

    def __init__(self, specs: Iterable[ProtocolSpec] = ()) -> None:
        self._by_wire_name: dict[str, ProtocolSpec] = {}
        self._specs: dict[str, ProtocolSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: ProtocolSpec) -> None:
        for wire_name in spec.wire_names:
            existing = self._by_wire_name.get(wire_name)
            if existing is not None and existing.name != spec.name:
                raise ValueError(f"subprotocol {wire_name!r} is already served by {existing.name}")
        self._specs[spec.name] = spec
        for wire_name in spec.wire_names:
            self._by_wire_name[wire_name] = spec

    def restrict(self, enabled: Iterable[str]) -> ProtocolRegistry:
        """A registry holding only the named protocols (by canonical name)."""
        wanted = set(enabled)
        unknown = wanted - self._specs.keys()
        if unknown:
            plugins = [name for name in installed_plugins() if name not in self._specs]
            raise ValueError(
                f"server.subprotocols: unknown subprotocol(s) {', '.join(sorted(unknown))}; "
                f"built in: {', '.join(self.names)}; installed plug-ins "
                f"({ENTRY_POINT_GROUP} entry points): {', '.join(plugins) or 'none'}"
            )
        return ProtocolRegistry(spec for name, spec in self._specs.items() if name in wanted)

    @property
    def names(self) -> list[str]:
        """Canonical names, in registration order."""
        return list(self._specs)

    def import_handlers(self) -> None:
        """Import every protocol's ``handler_modules`` (a hub's start, not a first connection)."""
        for spec in self._specs.values():
            for module in spec.handler_modules:
                importlib.import_module(module)

    @property
    def wire_names(self) -> list[str]:
        return list(self._by_wire_name)

    @property
    def reserved_methods(self) -> set[str]:
        """RPC method names the protocols answer themselves."""
        return {name for spec in self._specs.values() for name in spec.reserved_methods}

    def get(self, wire_name: str) -> ProtocolSpec | None:
        return self._by_wire_name.get(wire_name)

    def select(self, offered: Sequence[str], allowed: Iterable[str] | None = None) -> str | None:
        """Pick the client's most preferred subprotocol that we speak.

        Returns the wire name exactly as offered (the client only accepts a name
        it offered), or ``None`` when nothing was offered: the caller then applies
        the default-subprotocol rule. ``allowed`` narrows the choice (path pins).
        """
        if not offered:
            return None
        allowed_names = set(allowed) if allowed is not None else None
        for wire_name in offered:
            spec = self._by_wire_name.get(wire_name)
            if spec is None:
                continue
            if allowed_names is None or spec.name in allowed_names:
                return wire_name
        speaks = [
            name
            for name, spec in self._by_wire_name.items()
            if allowed_names is None or spec.name in allowed_names
        ]
        raise NegotiationRefused(
            f"unsupported subprotocol {', '.join(offered)}; this server speaks {', '.join(speaks)}"
        )


def builtin_protocols() -> list[ProtocolSpec]:
    """The protocols shipped with wshub (imported here, and only here, by hub/)."""
    from protocols.jsonrpc import PROTOCOL as jsonrpc

    specs = [jsonrpc]
    for module_name in ("protocols.channels", "protocols.mqtt", "protocols.wamp"):
        spec = _optional_builtin(module_name)
        if spec is not None:
            specs.append(spec)
    return specs


def _optional_builtin(module_name: str) -> ProtocolSpec | None:
    module = importlib.import_module(module_name)
    spec = getattr(module, "PROTOCOL", None)
    return spec if isinstance(spec, ProtocolSpec) else None


def installed_plugins() -> list[str]:
    """Names of the installed ``wshub.protocols`` entry points, without loading them."""
    return sorted({entry_point.name for entry_point in entry_points(group=ENTRY_POINT_GROUP)})


def entry_point_protocols(names: Iterable[str] | None = None) -> list[ProtocolSpec]:
    """Third-party protocols published under the ``wshub.protocols`` entry-point group.

    ``names`` picks the entry points to load (all when None): a plug-in not
    asked for is never imported, so a broken one only fails the hubs using it.
    An entry point's name is its protocol's canonical name (docs/plugins.md).
    """
    wanted = None if names is None else set(names)
    specs: list[ProtocolSpec] = []
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        if wanted is not None and entry_point.name not in wanted:
            continue
        loaded = entry_point.load()
        spec = loaded() if callable(loaded) and not isinstance(loaded, ProtocolSpec) else loaded
        if not isinstance(spec, ProtocolSpec):
            raise TypeError(
                f"entry point {entry_point.name} ({entry_point.value}) "
                f"did not provide a hub.handler.ProtocolSpec"
            )
        if spec.name != entry_point.name:
            raise TypeError(
                f"entry point {entry_point.name} ({entry_point.value}) provides protocol "
                f"{spec.name!r}: name the entry point {spec.name!r}"
            )
        specs.append(spec)
    return specs


def default_registry(enabled: Iterable[str] = ()) -> ProtocolRegistry:
    """The built-in protocols, plus the installed plug-ins named in ``enabled``.

    Plug-ins are opt-in (``server.subprotocols``): installing a package must not
    open a new protocol on every hub of the environment.
    """
    registry = ProtocolRegistry(builtin_protocols())
    wanted = [name for name in enabled if registry.get(name) is None]
    for spec in entry_point_protocols(wanted) if wanted else ():
        logger.info("loaded third-party subprotocol %s", spec.name)
        registry.register(spec)
    return registry
