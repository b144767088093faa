"""The benchmarks keep running (quick sizes); their numbers are printed, never asserted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_bench_composite_runs(capsys):
    results = _load("bench_composite").main(["--quick", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "ratio median/ours" in out
    assert all(r["t_ours"] > 0 and r["m_ours"] > 0 for r in results.values())
