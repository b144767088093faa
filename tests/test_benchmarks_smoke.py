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
    assert "ratio median/planned" in out
    assert all(r["planned_t"] > 0 and r["planned_m"] > 0 for r in results.values())


def test_bench_kernels_runs(capsys):
    assert _load("bench_kernels").main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "baseline ÷ kernel" in out and "| True" in out


@pytest.mark.slow
def test_bench_cloud_model_runs(capsys):
    pytest.importorskip("torch")
    _load("bench_cloud_model").main(["--quick", "--repeat", "1"])
    assert "Mpix/s" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_store_open_runs(capsys):
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    results = _load("bench_store_open").main(["--quick"])
    out = capsys.readouterr().out
    assert "ratio naive/open_store" in out
    assert set(results) == {"local", "s3"}
    assert all(
        r["total"] > 0 and r["peak_mb"] > 0 for rows in results.values() for r in rows.values()
    )


@pytest.mark.slow
def test_bench_peers_runs(capsys):
    pytest.importorskip("odc.stac")
    results = _load("bench_peers").main(["--quick", "--repeat", "1", "--no-real"])
    out = capsys.readouterr().out
    assert "fastest peer on the grid" in out
    (case,) = results.values()
    assert set(case) == {
        "production",
        "priority",
        "median",
        "odc-stac",
        "stackstac.mosaic",
        "first-utm",
    }
    assert all(r["t"] > 0 and r["m"] > 0 for r in case.values())
    # the priority kernel agrees with itself; odc-stac's first valid mostly agrees with it
    assert case["priority"]["eq"] == 1.0


@pytest.mark.slow
def test_bench_peers_floor_systems_run(capsys):
    """The opt-in rows: the bare planned composite (the floor of the production path) and,
    where odc-stac is installed (the bench extra), a median over its load; an unknown system
    is refused by name."""
    bench = _load("bench_peers")
    systems = ["production", "production-bare", "median"]
    if importlib.util.find_spec("odc.stac") is not None:
        systems.append("median-odc")
    results = bench.main(["--quick", "--repeat", "1", "--no-real", "--systems", ",".join(systems)])
    out = capsys.readouterr().out
    assert "median ÷ bare" in out and "its reads alone" in out
    assert "production-bare: plan" in out
    (case,) = results.values()
    assert set(case) == set(systems)
    assert all(r["t"] > 0 for r in case.values())
    assert case["production"]["plan"] > 0 and case["production-bare"]["compute"] > 0
    assert case["median"]["reads"] > 0
    with pytest.raises(SystemExit) as exc:
        bench.main(["--quick", "--systems", "production,mediam"])
    assert exc.value.code == 2
    assert "'mediam'" in capsys.readouterr().err


def test_bench_survey_runs(capsys):
    res = _load("bench_survey").main(["--repeat", "1", "--size", "1098", "--cell", "0.2"])
    out = capsys.readouterr().out
    assert "native ÷ grid" in out and "wrongly clear 0" in out
    assert 0 < res["clear_kept"] <= 1
