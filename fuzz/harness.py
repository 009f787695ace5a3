"""Run one fuzz target under atheris: ``python -m fuzz.harness <target> [libFuzzer args]``.

The target module (and through it the codec) is imported inside
``atheris.instrument_imports`` so libFuzzer sees the coverage of our Python
code; C extensions (orjson, msgpack, cbor2, pydantic-core) run uninstrumented.
"""

from __future__ import annotations

import importlib
import sys

TARGETS = ("jsonrpc", "channels", "mqtt", "mqtt5", "wamp")


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: python -m fuzz.harness {{{'|'.join(TARGETS)}}} [libFuzzer options]")
    # Optional (pip install '.[fuzz]'): imported by name, so type checks pass without it.
    atheris = importlib.import_module("atheris")

    with atheris.instrument_imports(include=["protocols", "hub", f"fuzz.fuzz_{argv[1]}"]):
        target = importlib.import_module(f"fuzz.fuzz_{argv[1]}")
    atheris.Setup([argv[0], *argv[2:]], target.check)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
