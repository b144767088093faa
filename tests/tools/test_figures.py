"""``s2cube figures`` (:mod:`s2cube.tools.figures`) on the real two-tile fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from s2cube.tools.figures import figures

BBOX = ("15.6", "46.0", "16.0", "46.2")  # two 1/4-degree cells: planned together


def test_figures_writes_the_sheets_and_metrics(real_catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures"
    args = ["--catalog", str(real_catalog), "--bbox", *BBOX, "--out", str(out)]
    result = CliRunner().invoke(figures, [*args, "--resolution", "1/500"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    blend = np.asarray(Image.open(out / "blend.png"))
    tone = np.asarray(Image.open(out / "tone.png"))
    h, w = 100, 200  # 0.2 x 0.4 degrees at 1/500
    assert blend.shape == (2 * h, 3 * w, 4)  # three variants over their scene maps
    assert tone.shape == (h, 4 * w, 4)  # TCI rule | PC sigmoidal | curve v1 | curve v2
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics) == ["plain", "harmonized+feather", "harmonized+multiband", "tone"]
    assert len(metrics["tone"]) == 4 and all("clipped" in m for m in metrics["tone"].values())
    plain = metrics["plain"]
    assert plain["colour_diff_raw"] == plain["colour_diff_harmonized"]  # nothing harmonized
    for name in ("harmonized+feather", "harmonized+multiband"):
        assert metrics[name]["colour_diff_harmonized"] < metrics[name]["colour_diff_raw"]
