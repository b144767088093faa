"""Two ``s2cube mosaic`` runs on one store never mix a cell (issue 15, defect 2).

Four trials of the schedule in ``tests/benchmarks/bench_two_writers.py`` (which runs 20):
two real CLI runs with different dates on one fresh store, started together or a few seconds
apart, two trials at a time, on the real fixture.  Every finished cell equals, pixel for pixel
and scene id for scene id, the single-writer reference run its manifest record names, every
record matches its pixels (``verify_store``), and a run that did not write was refused with a
message (exit 2), not a traceback.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.realdata import REAL_CATALOG

pytestmark = pytest.mark.skipif(not REAL_CATALOG.exists(), reason="real fixture missing")

BENCH = Path(__file__).resolve().parent / "benchmarks" / "bench_two_writers.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_two_writers", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while it loads
    spec.loader.exec_module(mod)
    return mod


def test_two_overlapping_writers_never_mix_a_cell(tmp_path: Path) -> None:
    bench = _bench()
    trials, _ = bench.run_trials(4, tmp_path, parallel=2, echo=True)
    problems = [p for t in trials for p in t.problems]
    assert problems == []
    assert [t.mixed for t in trials] == [0, 0, 0, 0]
    for t in trials:
        assert sorted(t.cells) == ["r0175c0783", "r0176c0783"]
        # one run wrote everything: a lease is held for the whole run
        assert len(set(t.cells.values())) == 1, t.cells
        assert 0 in t.codes.values()
        for run, code in t.codes.items():
            assert code == 0 or run in t.refused, (run, code)
