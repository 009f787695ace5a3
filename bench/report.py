"""Rows of hub-vs-baseline figures: printed as a table, written as JSON."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    workload: str
    metric: str
    hub: float
    baseline: float
    baseline_name: str
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float:
        return self.hub / self.baseline if self.baseline else 0.0


def print_table(rows: list[Row], *, flush: bool = False) -> None:
    header = (
        f"{'workload':<40} {'metric':<24} {'hub':>11} {'baseline':>11} {'ratio':>6}  "
        "baseline is / target"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        verdict = "" if row.met is None else (" ok" if row.met else " MISSED")
        target = f" / {row.target}{verdict}" if row.target else ""
        print(
            f"{row.workload:<40} {row.metric:<24} {row.hub:>11.2f} {row.baseline:>11.2f} "
            f"{row.ratio:>6.2f}  {row.baseline_name}{target}"
        )
    if flush:
        print(flush=True)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def write_json(
    rows: list[Row], started_load: list[float], notes: list[str], servers_python: str
) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    document = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        # The hub's and the baselines' (python -m bench --python).
        "servers_python": servers_python,
        # The machine is shared: how busy it was says how far to trust the run.
        "load_average_before": started_load,
        "load_average_after": load_average(),
        "notes": notes,
        "rows": [asdict(row) | {"ratio": row.ratio} for row in rows],
    }
    path = RESULTS / "latest.json"
    path.write_text(json.dumps(document, indent=2))
    return path
