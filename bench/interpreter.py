"""Which Python runs the servers under test: ``python -m bench --python PATH``.

The hub and the baseline servers always run on the same interpreter, so a
ratio compares the hub with its stack, not one Python with another. Another
interpreter gets its own venv under ``bench/.python-venvs/`` (git-ignored),
created on first use with wshub installed editable from this checkout, and
refreshed when pyproject.toml changes. Load generators (node) are unaffected.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

from bench.processes import ROOT

VENVS = ROOT / "bench" / ".python-venvs"
PYPROJECT = ROOT / "pyproject.toml"


def python_version(interpreter: str) -> str:
    """``3.12.1``: the version of the interpreter at this path."""
    out = subprocess.run(
        [interpreter, "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def venv_python(interpreter: str) -> str:
    """The python of a bench venv for ``interpreter`` with wshub installed in it."""
    venv = VENVS / f"python{python_version(interpreter)}"
    python = venv / "bin" / "python"
    stamp = venv / "wshub-pyproject.sha256"
    wanted = hashlib.sha256(PYPROJECT.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    print(f"installing wshub into {venv} (first use)", file=sys.stderr, flush=True)
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-e", str(ROOT)], check=True, timeout=1800
    )
    stamp.write_text(wanted)
    return str(python)
