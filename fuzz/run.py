"""``make fuzz``: run every fuzz target for a bounded time and summarise the run.

    python -m fuzz.run [--seconds N] [--targets jsonrpc,mqtt] [--workdir .fuzz]

``--seconds`` defaults to ``$FUZZ_SECONDS`` or 60 per target. Each target's
corpus (seeded from valid messages, grown by the fuzzer) lives in
``<workdir>/corpus/<target>`` and is reused by the next run; a crashing input
is written to ``<workdir>/crashes/<target>/``. The summary (executions,
coverage, corpus, crashes) goes to stdout and ``<workdir>/summary.json``; the
exit status is 1 if any target crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from fuzz.coverage import line_coverage
from fuzz.harness import TARGETS
from fuzz.seeds import write_corpus

# libFuzzer's status lines: "#1234	NEW    cov: 56 ft: 78 corp: 9/1Kb ..." and
# the final stats of -print_final_stats=1.
_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+) corp: (\d+)")
_STAT = re.compile(r"^stat::(\w+):\s+(\d+)")
_ARTIFACT = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")


@dataclass
class TargetRun:
    target: str
    seconds: int
    seeds: int
    executions: int = 0
    exec_per_second: int = 0
    coverage: int = 0
    features: int = 0
    corpus: int = 0
    new_units: int = 0
    peak_rss_mb: int = 0
    exit_code: int = 0
    crashes: list[str] = field(default_factory=list)
    # Per codec module: [lines the corpus runs, lines in its functions].
    line_coverage: dict[str, tuple[int, int]] = field(default_factory=dict)


def run_target(target: str, seconds: int, workdir: Path) -> TargetRun:
    corpus = workdir / "corpus" / target
    crashes = workdir / "crashes" / target
    logs = workdir / "logs"
    shutil.rmtree(crashes, ignore_errors=True)
    crashes.mkdir(parents=True)
    logs.mkdir(parents=True, exist_ok=True)
    result = TargetRun(target, seconds, write_corpus(target, corpus))
    command = [
        sys.executable,
        "-m",
        "fuzz.harness",
        target,
        str(corpus),
        f"-max_total_time={seconds}",
        "-timeout=10",  # seconds for one input: anything slower is a DoS bug
        "-rss_limit_mb=2048",
        "-max_len=4096",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
    ]
    log_path = logs / f"{target}.log"
    with log_path.open("w") as log:
        process = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    result.exit_code = process.returncode
    for line in log_path.read_text(errors="replace").splitlines():
        if match := _STATUS.match(line):
            result.executions = int(match[1])
            result.coverage, result.features, result.corpus = map(int, match.group(2, 3, 4))
        elif match := _STAT.match(line):
            name, value = match[1], int(match[2])
            if name == "number_of_executed_units":
                result.executions = value
            elif name == "average_exec_per_sec":
                result.exec_per_second = value
            elif name == "new_units_added":
                result.new_units = value
            elif name == "peak_rss_mb":
                result.peak_rss_mb = value
    result.crashes = sorted(p.name for p in crashes.iterdir() if p.name.startswith(_ARTIFACT))
    result.line_coverage = line_coverage(target, corpus)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "60")))
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--workdir", type=Path, default=Path(".fuzz"))
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s) {', '.join(sorted(unknown))}; known: {', '.join(TARGETS)}")
    started = time.monotonic()
    runs = []
    for target in targets:
        print(f"fuzzing {target} for {args.seconds}s ...", flush=True)
        run = run_target(target, args.seconds, args.workdir)
        runs.append(run)
        verdict = f"{len(run.crashes)} crash(es) in {args.workdir}/crashes/{target}"
        if not run.crashes and run.exit_code == 0:
            verdict = "no crash"
        elif not run.crashes:
            verdict = f"exit code {run.exit_code}, see {args.workdir}/logs/{target}.log"
        lines = ", ".join(
            f"{module} {hit}/{total} lines" for module, (hit, total) in run.line_coverage.items()
        )
        print(
            f"  {run.executions} executions ({run.exec_per_second}/s), coverage {run.coverage}, "
            f"features {run.features}, corpus {run.corpus} (+{run.new_units}), "
            f"peak RSS {run.peak_rss_mb} MB: {verdict}\n  corpus runs {lines}",
            flush=True,
        )
    summary = {
        "seconds_total": round(time.monotonic() - started),
        "python": sys.version.split()[0],
        "runs": [asdict(run) for run in runs],
    }
    (args.workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    failed = [run.target for run in runs if run.crashes or run.exit_code != 0]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
