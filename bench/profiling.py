"""py-spy flame graphs of the hub while it is measured: ``python -m bench --profile``.

py-spy samples the hub process from outside (no code change, little overhead)
and writes one SVG per workload to bench/results/profiles/. It is the
``[bench]`` extra: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from bench.report import RESULTS

T = TypeVar("T")

PROFILES = RESULTS / "profiles"
# Set by --profile; None profiles nothing.
enabled = False


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(found).exists():
        raise RuntimeError("--profile needs py-spy: pip install -e '.[bench]'")
    return found


def profiled(pid: int, label: str, measure: Callable[[], T]) -> Callable[[], T]:
    """``measure``, sampled by py-spy into PROFILES/<label>.svg when profiling is on."""

    def run() -> T:
        if not enabled:
            return measure()
        PROFILES.mkdir(parents=True, exist_ok=True)
        output = PROFILES / (re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") + ".svg")
        args = [py_spy(), "record", "--pid", str(pid), "--rate", "250", "--nonblocking"]
        spy = subprocess.Popen(
            [*args, "--format", "flamegraph", "--output", str(output)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            return measure()
        finally:
            # py-spy writes its output when interrupted.
            spy.send_signal(signal.SIGINT)
            spy.wait(60)

    return run
