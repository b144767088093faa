"""Every MosaicConfig / ExecutionOptions option is reachable from ``s2cube mosaic`` and lands
in the store's run record (one test per option), validated once, before any cluster starts."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

import s2cube
from s2cube.cli import OPTIONAL_COMMANDS, _LazyCommand, main
from s2cube.config import ExecutionOptions, MosaicConfig

# the demo grid (1/2000°, 0.1° cells of 200 px) and one cell of the sample catalog
GRID_ARGS = ("--resolution", "1/2000", "--cell-size", "1/10", "--chunk-size", "100")
ONE_CELL = ("11.92", "46.02", "11.98", "46.08")

#: flag(s) → (record section, option, value the record must hold)
CASES = {
    "bands": (("--bands", "red,nir"), "config", ["red", "nir"]),
    "priority": (("--priority", "cloud"), "config", "cloud"),
    "cloud_dilation": (("--cloud-dilation", "1"), "config", 1),
    "shadow_dilation": (("--shadow-dilation", "3"), "config", 3),
    "resampling": (("--resampling", "bilinear"), "config", "bilinear"),
    "plan_factor": (("--plan-factor", "4"), "config", 4),
    "harmonize": (("--harmonize", "histogram"), "config", "histogram"),
    "reference": (("--reference", "best"), "config", "best"),
    "blend": (("--blend", "multiband"), "config", "multiband"),
    "blend_width": (("--blend-width", "4"), "config", 4),
    "haze_threshold": (("--haze-threshold", "none"), "config", None),
    "mask_method": (("--mask-method", "combined", "--model-context", "8"), "config", "combined"),
    "model": (("--model", "csmask-l2a-6b"), "config", "csmask-l2a-6b"),
    "model_factor": (("--model-factor", "2"), "config", 2),
    "model_context": (("--model-context", "16"), "config", 16),
    "fill_periods": (
        ("--fill-periods", "1", "--start", "2023-08-18", "--end", "2023-08-20"),
        "config",
        1,
    ),
    "fill_direction": (("--fill-direction", "back"), "config", "back"),
    "inpaint": (("--inpaint", "telea"), "config", "telea"),
    "landcover": (("--landcover", "unets"), "config", "unets"),
    "plan": (("--no-plan",), "execution", False),
    "block": (("--block", "64"), "execution", 64),
    "strict": (("--strict",), "execution", True),
    "overviews": (("--no-overviews",), "execution", False),
}


def test_every_option_has_a_case():
    names = {f.name for f in dataclasses.fields(MosaicConfig)}
    names |= {f.name for f in dataclasses.fields(ExecutionOptions)}
    assert names == set(CASES)


def _mosaic(catalog, store, *extra):
    args = [
        "mosaic",
        "--catalog",
        str(catalog),
        "--bbox",
        *ONE_CELL,
        "--store",
        str(store),
        "--workers",
        "0",
        "--no-progress",
        *GRID_ARGS,
        *extra,
    ]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _record(store):
    (rec,) = s2cube.read_manifest(store).values()
    return rec


@pytest.mark.parametrize("option", sorted(CASES))
def test_flag_reaches_the_run_record(sample_catalog, tmp_path, option):
    flags, section, expected = CASES[option]
    store = tmp_path / "m.zarr"
    res = _mosaic(sample_catalog, store, *flags)
    assert res.exit_code == 0, res.output
    rec = _record(store)
    assert rec[section][option] == expected
    # every other option is recorded too, with its default
    assert set(rec["config"]) == {f.name for f in dataclasses.fields(MosaicConfig)}
    assert set(rec["execution"]) == {f.name for f in dataclasses.fields(ExecutionOptions)}
    assert rec["n_composited"] > 0


def test_reference_store_and_config_file(sample_catalog, tmp_path):
    ref = tmp_path / "ref.zarr"
    assert _mosaic(sample_catalog, ref).exit_code == 0
    toml = tmp_path / "run.toml"
    toml.write_text(f'reference = "{ref}"\nblend = "none"\nblend-width = 3\nplan = false\n')
    store = tmp_path / "m.zarr"
    res = _mosaic(sample_catalog, store, "--config", str(toml), "--blend-width", "5")
    assert res.exit_code == 0, res.output
    rec = _record(store)
    assert rec["config"]["reference"] == str(ref) and rec["config"]["blend"] == "none"
    assert rec["config"]["blend_width"] == 5  # the flag wins over the file
    assert rec["execution"]["plan"] is False
    assert MosaicConfig.from_record(rec["config"]).reference == str(ref)


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--blend-width", "-1"), "blend_width=-1"),
        (("--reference", "no/such/store.zarr"), "neither 'composite', 'best' nor an s2cube store"),
        (("--block", "4"), "block=4"),
        (("--mask-method", "model", "--model", "no-such-model"), "neither a registry model"),
        (("--dilation", "1", "--bands", "red,red"), "lists a band twice"),
    ],
)
def test_bad_options_exit_2_before_anything_starts(sample_catalog, tmp_path, extra, message):
    store = tmp_path / "m.zarr"
    res = CliRunner().invoke(
        main,
        [
            "mosaic",
            "--catalog",
            str(sample_catalog),
            "--bbox",
            *ONE_CELL,
            "--store",
            str(store),
            *GRID_ARGS,
            *extra,
        ],  # no --workers 0: a cluster would start
    )
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "dask dashboard" not in res.output and not store.exists()


def test_bad_config_file_names_the_option(sample_catalog, tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text("blend_widht = 3\n")
    res = _mosaic(sample_catalog, tmp_path / "m.zarr", "--config", str(toml))
    assert res.exit_code == 2 and "blend_widht" in res.output and "blend_width" in res.output


@pytest.mark.parametrize("name", sorted(OPTIONAL_COMMANDS))
def test_optional_commands_load_and_show_their_own_help(name):
    """Registered explicitly: each loads (an import error would surface here) and --help reaches
    the real command."""
    res = CliRunner().invoke(main, [name, "--help"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output and "--" in res.output


def test_a_missing_extra_names_the_extra_to_install(tmp_path, monkeypatch):
    (tmp_path / "s2cube_fake_tool.py").write_text("import no_such_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cmd = _LazyCommand("fake", "s2cube_fake_tool", "cmd", "serve", "A fake tool.")
    main.add_command(cmd)
    try:
        res = CliRunner().invoke(main, ["fake", "--flag"])
    finally:
        main.commands.pop("fake")
    assert res.exit_code == 2
    assert "no_such_package_xyz" in res.output and "pip install 's2cube[serve]'" in res.output
