"""End-to-end training on the real 120 m fixture (tiny: a few seconds per run)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from s2cube.errors import InputError
from s2cube.models import load_model, predict
from s2cube.models.train import TrainConfig, extract_patches, train_cloud

torch = pytest.importorskip("torch")
pytest.importorskip("stackstac")

BBOX = (520000, 5040000, 570000, 5090000)  # 50 km in the 33TWL/33TWM overlap region


@pytest.fixture(scope="module")
def cube(fixture_root):
    from s2cube.models.cli import load_catalog_cube

    return load_catalog_cube(
        fixture_root.parent / "catalog.json",
        assets=["blue", "green", "red", "nir", "scl"],
        resolution=120,
        bbox=BBOX,
    ).compute()


TINY = TrainConfig(patch=32, epochs=2, width=4, depth=2, batch_size=16, max_patches=64)


@pytest.fixture(scope="module")
def weak_run(cube, tmp_path_factory):
    """One training run on SCL weak labels, shared by the tests below."""
    return train_cloud(cube, tmp_path_factory.mktemp("weak") / "a", config=TINY)


def test_train_cloud_end_to_end_and_reproducible(cube, weak_run, tmp_path) -> None:
    first = weak_run
    second = train_cloud(cube, tmp_path / "b", config=TINY)
    assert [h["val_loss"] for h in first.history] == [h["val_loss"] for h in second.history]
    assert first.history[-1]["train_loss"] < first.history[0]["train_loss"] * 1.5
    assert (first.path.parent / "checkpoints" / "epoch-002.pt").exists()
    history = json.loads((first.path.parent / "history.json").read_text())
    assert history["best_epoch"] == first.best_epoch
    model = load_model(first.path)
    assert model.card.classes == ("clear", "cloud", "shadow")
    assert model.card.input_bands == ("blue", "green", "red", "nir")
    assert model.card.resolution_m == 120.0 and "val_loss" in model.card.metrics
    x = cube.sel(band=["blue", "green", "red", "nir"]).values[:1, :, :64, :64] / 1e4
    prob = predict(model, x.astype(np.float32), window=32, overlap=8)
    assert prob.shape == (1, 3, 64, 64) and np.allclose(prob.sum(1), 1, atol=1e-5)


def test_train_haze_from_the_cli(cube, fixture_root, tmp_path) -> None:
    from click.testing import CliRunner

    from s2cube.models.cli import train

    result = CliRunner().invoke(
        train,
        [
            "haze",
            str(fixture_root.parent / "catalog.json"),
            "--out",
            str(tmp_path / "haze"),
            "--bbox",
            *map(str, BBOX),
            "--bbox-crs",
            "items",
            "--epochs",
            "1",
            "--width",
            "4",
            "--max-patches",
            "200",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "saved" in result.output
    model = load_model(tmp_path / "haze" / "model.pt")
    assert model.card.classes == ("clear", "haze") and model.card.architecture == "haze-net"


def test_user_labels_train_a_model(cube, weak_run, tmp_path) -> None:
    """User masks equal to SCL's weak labels must train exactly the same model."""
    from s2cube.models.evaluate import scl_to_codes

    labels = scl_to_codes(cube.sel(band="scl").values)  # user masks in s2cube codes
    bands = cube.sel(band=["blue", "green", "red", "nir"])
    user = train_cloud(bands, tmp_path / "user", labels=labels, config=TINY)
    weak = weak_run
    assert "user masks" in user.card.training_data
    assert [h["val_loss"] for h in user.history] == [h["val_loss"] for h in weak.history]


def test_user_labels_are_used(cube, tmp_path) -> None:
    labels = np.ones(cube.isel(band=0).shape, dtype=np.uint8)  # all clear ...
    labels[:, :, :100] = 2  # ... except a cloud strip; no shadow at all
    with pytest.raises(InputError, match="shadow"):
        train_cloud(cube, tmp_path, labels=labels, config=TINY)


def test_extract_patches_drops_unlabelled() -> None:
    labels = np.full((1, 8, 8), 255, np.uint8)
    labels[0, :4, :4] = 1
    x, y = extract_patches(np.zeros((1, 2, 8, 8), np.float32), labels, patch=4)
    assert x.shape == (1, 2, 4, 4) and (y == 1).all()
