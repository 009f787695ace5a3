"""The fuzz targets (fuzz/) hold on their seed corpora, so ``make fuzz`` starts from green."""

from __future__ import annotations

import importlib

import pytest

from fuzz.harness import TARGETS
from fuzz.seeds import TARGETS as SEEDS


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_accepts_its_seeds(target: str) -> None:
    """Each seed passes its target's properties; every target has seeds."""
    check = importlib.import_module(f"fuzz.fuzz_{target}").check
    seeds = SEEDS[target]()
    assert len(seeds) >= 5
    for seed in seeds:
        check(seed)


@pytest.mark.parametrize(
    ("target", "data"),
    [
        ("jsonrpc", b'{"jsonrpc":"2.0","id":1,"method":"m","params":'),
        ("channels", b"\x00not json"),
        ("mqtt", b"\x00\xff\xff\xff\xff\xff"),
        ("mqtt5", b"\x00\x30\x03\x00\x00\x00"),
        ("wamp", b"\x00[1"),
        # Found by fuzzing: CBOR text starting with NUL, relayed to JSON peers.
        ("wamp", bytes.fromhex("0283056d000000000000001269636b6574a0")),
    ],
)
def test_targets_accept_refused_input(target: str, data: bytes) -> None:
    """Input each codec refuses with its own error passes its target (no false crash)."""
    importlib.import_module(f"fuzz.fuzz_{target}").check(data)
