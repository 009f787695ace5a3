"""Line coverage of the codec modules reached by a fuzz corpus: the number to quote.

libFuzzer's ``cov`` counts instrumented edges, which says little to a reader;
this replays a corpus through a target's ``check`` under ``sys.settrace`` and
reports, per codec module, the lines of its functions that ran out of those
that could. (Module and class bodies run at import, so they are left out.)
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Iterator
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: The pure modules each target exercises.
MODULES: dict[str, tuple[str, ...]] = {
    "jsonrpc": ("protocols/jsonrpc/codec.py",),
    "channels": ("protocols/channels/codec.py", "hub/payloads.py"),
    "mqtt": ("protocols/mqtt/codec.py", "protocols/mqtt/topics.py"),
    "mqtt5": ("protocols/mqtt/codec5.py", "protocols/mqtt/properties.py", "protocols/mqtt/wire.py"),
    "wamp": ("protocols/wamp/codec.py", "protocols/wamp/serializers.py"),
}


def _functions(code: CodeType) -> Iterator[CodeType]:
    for const in code.co_consts:
        if isinstance(const, CodeType):
            if const.co_flags & inspect.CO_OPTIMIZED:  # a function, not a class body
                yield const
            yield from _functions(const)


def executable_lines(path: Path) -> set[int]:
    """Lines of the functions in a module that bytecode maps to."""
    module = compile(path.read_text(), str(path), "exec")
    return {
        line
        for function in _functions(module)
        for _, _, line in function.co_lines()
        if line is not None and line != function.co_firstlineno
    }


def line_coverage(target: str, corpus: Path) -> dict[str, tuple[int, int]]:
    """``{module: (lines run, executable lines)}`` for ``target`` over ``corpus``."""
    check = importlib.import_module(f"fuzz.fuzz_{target}").check
    paths = {str(ROOT / module): module for module in MODULES[target]}
    hit: dict[str, set[int]] = {module: set() for module in paths.values()}

    def trace_lines(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            hit[paths[frame.f_code.co_filename]].add(frame.f_lineno)
        return trace_lines

    def trace_calls(frame: FrameType, event: str, arg: Any) -> Any:
        return trace_lines if frame.f_code.co_filename in paths else None

    sys.settrace(trace_calls)
    try:
        for unit in sorted(corpus.iterdir()):
            try:
                check(unit.read_bytes())
            except Exception:  # a crashing input still covered lines; run.py reports it
                continue
    finally:
        sys.settrace(None)
    report = {}
    for filename, module in paths.items():
        lines = executable_lines(Path(filename))
        report[module] = (len(hit[module] & lines), len(lines))
    return report
