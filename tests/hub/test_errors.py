"""One exception root: every exception class wshub defines derives from ``HubError``."""

from __future__ import annotations

import importlib
import pkgutil

import hub
import protocols
from hub import HubError, PermissionDenied, RpcError
from hub.tls import TlsError

# ``hub.__main__`` runs the server when imported.
SKIP = {"hub.__main__"}


def _import_all() -> list[str]:
    names = []
    for package in (hub, protocols):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name not in SKIP:
                importlib.import_module(info.name)
                names.append(info.name)
    return names


def _subclasses(root: type[BaseException]) -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    pending = [root]
    while pending:
        for sub in pending.pop().__subclasses__():
            if sub not in found:
                found.add(sub)
                pending.append(sub)
    return found


def test_every_exception_in_hub_and_protocols_derives_from_hub_error() -> None:
    """Each BaseException subclass defined in a hub/ or protocols/ module is a HubError."""
    modules = _import_all()
    ours = {
        cls
        for cls in _subclasses(BaseException)
        if cls.__module__.split(".")[0] in ("hub", "protocols")
    }
    # The walk reached the packages and the classes (not an empty pass).
    assert len(modules) > 100
    assert len(ours) > 40
    strays = sorted(
        f"{cls.__module__}.{cls.__qualname__}" for cls in ours if not issubclass(cls, HubError)
    )
    assert strays == []


def test_second_bases_still_catch() -> None:
    """A class that was a ValueError (or other builtin) still is one, so old handlers catch it."""
    assert issubclass(TlsError, ValueError)
    assert issubclass(TlsError, HubError)
    assert issubclass(PermissionDenied, HubError)
    assert issubclass(RpcError, HubError)
