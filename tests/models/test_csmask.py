"""The pretrained ukis-csmask models through the torch engine, on real Sentinel-2 data."""

from __future__ import annotations

import os
import warnings

import dask.array as da
import numpy as np
import pytest

from s2cube.errors import InputError
from s2cube.models import MASK_CODES, cloud_mask, load_model, predict
from s2cube.models.evaluate import confusion, scl_to_codes, scores

BANDS = ("blue", "green", "red", "nir")  # B02 B03 B04 B08 of the fixture

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("ukis_csmask")
xr = pytest.importorskip("xarray")

CLOUDY = "S2A_33TWL_20230818_0_L2A"  # 38 % cloud, 11 % shadow in SCL
CROP = (slice(300, 556), slice(300, 556))


@pytest.fixture(scope="module")
def l2a_4b():
    return load_model("csmask-l2a-4b")


def _onnxruntime_probabilities(model, x: np.ndarray) -> np.ndarray:
    """ukis-csmask's own recipe: standardise, run the ONNX graph, softmax over classes."""
    from importlib.resources import files

    from scipy.special import softmax

    from s2cube.models.registry import REGISTRY

    card = model.card
    mean = np.asarray(card.normalisation["mean"], np.float32)[:, None, None]
    std = np.asarray(card.normalisation["std"], np.float32)[:, None, None]
    path = files("ukis_csmask") / f"{REGISTRY[card.name][0]}.onnx"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = min(2, os.cpu_count() or 1)
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": ((x - mean) / std)[None].astype(np.float32)})[0]
    return softmax(logits, axis=1)[0]


def _torch_probabilities(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model.module(torch.from_numpy(x[None])).numpy()[0]


def test_card_reproduces_ukis_csmask_normalisation(l2a_4b) -> None:
    card = l2a_4b.card
    assert card.input_bands == ("blue", "green", "red", "nir")
    assert card.classes == ("clear", "cloud", "shadow")
    assert card.window == 256 and card.resolution_m == 30.0 and card.licence == "Apache-2.0"
    assert card.normalisation["mean"][0] == pytest.approx(0.26681777834892273)
    assert card.normalisation["std"][3] == pytest.approx(0.27260705828666687)


def test_torch_matches_onnxruntime_on_real_l2a(read_item, fixture_root, l2a_4b) -> None:
    dn, _ = read_item(fixture_root, CLOUDY, CROP)
    x = dn.astype(np.float32) / 10000
    ours, ref = _torch_probabilities(l2a_4b, x), _onnxruntime_probabilities(l2a_4b, x)
    max_diff = float(np.abs(ours - ref).max())
    agreement = float((ours.argmax(0) == ref.argmax(0)).mean())
    print(
        f"csmask-l2a-4b torch fp32 vs onnxruntime: max |dp| = {max_diff:.4f}, "
        f"argmax agreement = {agreement:.5f}"
    )
    # onnxruntime runs the graph's float16 weights and activations; torch runs them in float32
    assert max_diff < 0.02
    assert agreement > 0.998
    assert len(np.unique(ref.argmax(0))) == 3  # the crop holds clear, cloud and shadow


@pytest.mark.parametrize("name", ["csmask-l1c-6b", "csmask-l1c-4b"])
def test_torch_matches_onnxruntime_on_real_l1c(name, eolearn_dir) -> None:
    rasterio = pytest.importorskip("rasterio")
    folder = eolearn_dir / "reference_scenes_l1c_13band"
    model = load_model(name)
    with rasterio.open(folder / "S2_L1C_TOA_20150731T100009_13band.tif") as src:  # cloudy
        toa = src.read()
    # B02 B03 B04 B08 B11 B12 of the 13-band stack, mirrored up to one 256 px window
    x = toa[[1, 2, 3, 7, 11, 12][: len(model.card.input_bands)]]
    x = np.pad(x, ((0, 0), (0, 256 - x.shape[1]), (0, 256 - x.shape[2])), mode="symmetric")
    ours, ref = _torch_probabilities(model, x), _onnxruntime_probabilities(model, x)
    max_diff = float(np.abs(ours - ref).max())
    print(f"{name} torch vs onnxruntime: max |dp| = {max_diff:.4f}")
    assert max_diff < 0.02
    assert (ours.argmax(0) == ref.argmax(0)).mean() > 0.998


def test_cloud_mask_matches_ukis_csmask_itself(read_item, fixture_root, l2a_4b) -> None:
    """Our engine (global windows, ramp blending) vs ukis-csmask's CSmask (its own tiling)."""
    from ukis_csmask.mask import CSmask

    dn, _ = read_item(fixture_root, CLOUDY, (slice(250, 550), slice(250, 550)))
    theirs = CSmask(
        np.moveaxis(dn.astype(np.float32) / 10000, 0, -1),
        band_order=list(BANDS),
        product_level="l2a",
        invalid_buffer=0,
        intra_op_num_threads=2,
        providers=["CPUExecutionProvider"],
    ).csm[..., 0]
    cube = xr.DataArray(dn[None], dims=("time", "band", "y", "x"), coords={"band": list(BANDS)})
    ours = cloud_mask(cube, model=l2a_4b, overlap=51).values[0]
    agreement = float((ours == theirs + 1).mean())  # their 0/1/2 = our 1/2/3
    print(f"cloud_mask vs ukis-csmask CSmask: agreement {agreement:.4f}")
    # The EfficientNet's squeeze-excitation blocks pool over the whole window, so every pixel
    # depends on which 256 px window it sits in: two valid tilings (ours: global grid, ramp;
    # theirs: mirrored 51 px border, Tukey) agree on ~88 % of pixels at 120 m.
    assert agreement > 0.85


def test_real_model_is_chunking_invariant(read_item, fixture_root, l2a_4b) -> None:
    dn, _ = read_item(fixture_root, CLOUDY, (slice(200, 500), slice(200, 470)))
    x = dn.astype(np.float32) / 10000
    ref = predict(l2a_4b, x, precision="bf16", batch_size=4)
    exact = predict(
        l2a_4b, da.from_array(x, chunks=(4, 160, 140)), precision="bf16", batch_size=4
    ).compute(scheduler="sync")
    assert np.abs(exact - ref).max() < 2e-2  # bf16 batches of different composition
    assert (exact.argmax(0) == ref.argmax(0)).mean() > 0.999
    small_halo = predict(
        l2a_4b, da.from_array(x, chunks=(4, 150, 135)), precision="bf16", halo=64, batch_size=4
    ).compute(scheduler="sync")
    agreement = float((small_halo.argmax(0) == ref.argmax(0)).mean())
    print(f"halo=64 vs single pass: argmax agreement {agreement:.4f}")
    # window context matters for this model (global pooling), hence halo=None by default
    assert 0.8 < agreement < float((exact.argmax(0) == ref.argmax(0)).mean())


def test_cloud_mask_codes_nodata_and_scl_agreement(read_item, fixture_root, l2a_4b) -> None:
    dn, scl = read_item(fixture_root, CLOUDY, CROP)
    dn[:, :20, :] = 0  # a nodata strip
    cube = xr.DataArray(
        da.from_array(dn[None], chunks=(1, 4, 128, 128)),
        dims=("time", "band", "y", "x"),
        coords={"band": list(BANDS), "time": [np.datetime64("2023-08-18")]},
    )
    mask = cloud_mask(cube, model=l2a_4b, precision="bf16")
    assert mask.dims == ("time", "y", "x") and mask.dtype == np.uint8 and mask.chunks is not None
    codes = mask.values[0]
    assert (codes[:20] == MASK_CODES["nodata"]).all()
    assert set(np.unique(codes[20:])) <= {1, 2, 3}
    ref = scl_to_codes(scl)[20:]
    s = scores(confusion(codes[20:], ref, (1, 2, 3)), (1, 2, 3))
    print(f"vs SCL on the crop: accuracy {s.accuracy:.3f}, F1 clear/cloud/shadow {s.f1}")
    assert s.accuracy > 0.7
    assert s.f1[1] > 0.75  # cloud


def test_cloud_mask_names_missing_bands(l2a_4b) -> None:
    cube = xr.DataArray(
        np.ones((1, 2, 8, 8), np.uint16),
        dims=("time", "band", "y", "x"),
        coords={"band": ["red", "nir"]},
    )
    with pytest.raises(InputError, match="blue"):
        cloud_mask(cube, model=l2a_4b)
    with pytest.raises(InputError, match="dtype"):
        cloud_mask(cube.astype(np.float32), model=l2a_4b)


def test_cloud_mask_runs_at_model_resolution_on_fine_cubes(read_item, fixture_root, l2a_4b) -> None:
    """On a cube with 10 m pixels the 30 m model sees 3×3 block means (nodata left out)."""
    dn, _ = read_item(fixture_root, CLOUDY, (slice(400, 496), slice(400, 490)))
    dn[:, :7, :5] = 0
    cube = xr.DataArray(
        da.from_array(dn[None], chunks=(1, 4, 48, 45)),
        dims=("time", "band", "y", "x"),
        coords={
            "band": list(BANDS),
            "y": 5000000 - 10.0 * np.arange(96),
            "x": 10.0 * np.arange(90),
        },
    )
    mask = cloud_mask(cube, model=l2a_4b).values[0]
    refl = np.where(dn == 0, np.nan, dn / 1e4).reshape(4, 32, 3, 30, 3)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-nodata blocks: NaN, then 0
        coarse = np.nan_to_num(np.nanmean(refl, axis=(2, 4))).astype(np.float32)
    expected = np.repeat(np.repeat(predict(l2a_4b, coarse).argmax(0) + 1, 3, 0), 3, 1)
    expected[:7, :5] = 0
    assert mask.shape == (96, 90)
    assert (mask == expected).mean() > 0.999
    assert (cloud_mask(cube, model=l2a_4b, factor=1).values[0] != mask).any()


def test_combination_with_scl_follows_the_documented_precedence() -> None:
    from s2cube.models import combine_with_scl

    rng = np.random.default_rng(0)
    model = rng.integers(0, 4, (50, 40)).astype(np.uint8)
    scl = rng.integers(0, 14, (50, 40)).astype(np.uint8)
    out = combine_with_scl(model, scl)
    # the rule, written out pixel by pixel
    for m, s, o in zip(model.ravel(), scl.ravel(), out.ravel(), strict=True):
        if s == 0 or s > 11 or m == 0:
            assert o == 0
        elif m == 2 or s in (8, 9):
            assert o == 2
        elif s == 10:
            assert o == 4
        elif m == 3 or s == 3:
            assert o == 3
        elif s == 11:
            assert o == 5
        else:
            assert o == 1
    lazy = combine_with_scl(
        xr.DataArray(da.from_array(model, chunks=16), dims=("y", "x")),
        xr.DataArray(da.from_array(scl, chunks=16), dims=("y", "x")),
    )
    assert lazy.chunks is not None
    np.testing.assert_array_equal(lazy.values, out)
