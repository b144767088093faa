"""The Dynamic World port against Google's TensorFlow model, and through s2cube's engine.

Measured on this stack (CPU, torch 2.13, float32): max |logit - TF logit| is 5.7e-6 to 6.7e-6 on
the five Slovenia dates and the random input (logits up to about 9), argmax agreement 1.0; the
normalisation reproduces TF's inputs from the raw L1C scenes to 1.2e-7. CPU bf16 autocast:
max logit difference 0.04-0.09, max probability difference 0.009-0.024, argmax agreement >= 0.998.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from s2cube.models.dynamicworld import (  # noqa: E402
    DW_BANDS,
    DW_CLASSES,
    bilinear_matrix,
    load_net,
    normalise_dn,
    scale_translate_matrix,
    weights_path,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
DW_DIR = SHARED / "models" / "dynamicworld"
SCENES = SHARED / "data" / "eolearn_testeopatch_slovenia_33N" / "reference_scenes_l1c_13band"
DATES = ("20150711", "20150731", "20150820", "20150830", "20150909")
#: positions of DW's bands (B2-B8, B11, B12) in the 13-band L1C files
L1C_INDEX = [1, 2, 3, 4, 5, 6, 7, 11, 12]

#: float32 port vs TF float32: measured <= 6.7e-6; the bound leaves room for other BLAS builds
LOGIT_TOL = 1e-4


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    path = DW_DIR / "reference_outputs.npz"
    if not path.exists():
        pytest.skip(f"TF reference outputs not found at {path}")
    with np.load(path) as blob:
        return {k: blob[k] for k in blob.files}


@pytest.fixture(scope="module")
def net():
    return load_net()


def _run(net, nhwc: np.ndarray, device: str = "cpu", dtype=None) -> np.ndarray:
    x = torch.from_numpy(nhwc).permute(2, 0, 1)[None].to(device)
    with (
        torch.inference_mode(),
        torch.autocast(
            torch.device(device).type, dtype=dtype or torch.float32, enabled=dtype is not None
        ),
    ):
        y = net.to(device)(x).float()
    return y[0].permute(1, 2, 0).cpu().numpy()


@pytest.mark.parametrize("key", [*DATES, "random"])
def test_port_matches_tensorflow_logits(net, reference, key) -> None:
    logits = _run(net, reference[f"input_{key}"])
    ref = reference[f"logits_{key}"]
    diff = float(np.abs(logits - ref).max())
    agree = float((logits.argmax(-1) == ref.argmax(-1)).mean())
    print(
        f"{key}: max |logit diff| {diff:.2e} (|logit| <= {np.abs(ref).max():.2f}), argmax {agree}"
    )
    assert diff < LOGIT_TOL
    assert agree == 1.0


@pytest.mark.parametrize("date", DATES)
def test_normalisation_reproduces_tensorflow_inputs(reference, date) -> None:
    rasterio = pytest.importorskip("rasterio")
    files = sorted(SCENES.glob(f"S2_L1C_TOA_{date}T*_13band.tif"))
    if not files:
        pytest.skip(f"L1C scene {date} not found in {SCENES}")
    with rasterio.open(files[0]) as src:
        toa = src.read()
    x = normalise_dn(toa[L1C_INDEX] * 10000)[:, :96, :96].transpose(1, 2, 0)
    np.testing.assert_allclose(x, reference[f"input_{date}"], rtol=0, atol=1e-6)
    # the torch path of the same function
    t = normalise_dn(torch.from_numpy(toa[L1C_INDEX][None] * 10000))[0].numpy()
    np.testing.assert_allclose(t[:, :96, :96].transpose(1, 2, 0), x, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("n_in", "n_out"), [(96, 48), (101, 50), (7, 3), (64, 32)])
def test_scale_and_translate_equals_torch_antialiased_bilinear(n_in, n_out) -> None:
    # an independent implementation of the same triangle-kernel resampling (PIL-style)
    F = torch.nn.functional
    x = torch.rand(1, 1, n_in, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ours = torch.from_numpy(scale_translate_matrix(n_in, n_out)).double() @ x[0, 0]
    theirs = F.interpolate(x, size=(n_out, 3), mode="bilinear", antialias=True)[0, 0]
    assert float((ours - theirs).abs().max()) < 1e-6
    assert np.allclose(scale_translate_matrix(n_in, n_out).sum(1), 1.0, atol=1e-6)


@pytest.mark.parametrize(("n_in", "n_out"), [(48, 96), (50, 101), (3, 7)])
def test_half_pixel_bilinear_equals_torch_bilinear(n_in, n_out) -> None:
    F = torch.nn.functional
    x = torch.rand(1, 1, n_in, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ours = torch.from_numpy(bilinear_matrix(n_in, n_out)).double() @ x[0, 0]
    theirs = F.interpolate(x, size=(n_out, 3), mode="bilinear", align_corners=False)[0, 0]
    assert float((ours - theirs).abs().max()) < 1e-6


def test_registry_model_ships_weights_licence_and_card() -> None:
    from s2cube.models import load_model
    from s2cube.models.runtime import ModelRef

    model = load_model("dynamicworld")
    assert model.card.input_bands == DW_BANDS and model.card.classes == DW_CLASSES
    assert model.card.product_level == "l1c" and model.card.output == "softmax"
    folder = weights_path().parent
    assert weights_path().stat().st_size < 5e6
    assert "Apache License" in (folder / "dynamicworld.LICENSE").read_text()
    assert "Dynamic World" in (folder / "dynamicworld.NOTICE").read_text()
    # workers load it by name from their own install
    assert ModelRef.of(model).source == "dynamicworld"
    # every TF variable (231,209 values) is a parameter or a BN running statistic here
    n = sum(p.numel() for p in model.net.parameters())
    n += sum(b.numel() for k, b in model.net.named_buffers() if "running" in k)
    assert n == 231209


def _slovenia_reflectance(dates: tuple[str, ...]) -> np.ndarray:
    rasterio = pytest.importorskip("rasterio")
    out = []
    for date in dates:
        files = sorted(SCENES.glob(f"S2_L1C_TOA_{date}T*_13band.tif"))
        if not files:
            pytest.skip(f"L1C scene {date} not found in {SCENES}")
        with rasterio.open(files[0]) as src:
            out.append(src.read()[L1C_INDEX])
    return np.stack(out).astype(np.float32)


def test_engine_is_chunking_invariant_with_the_default_halo() -> None:
    """predict over dask chunks (halo = window - 1) == the single numpy pass, a real date."""
    import dask.array as da

    from s2cube.models import load_model, predict

    model = load_model("dynamicworld")
    x = _slovenia_reflectance(("20150830",))  # (1, 9, 101, 100)
    kw = {"window": 64, "overlap": 16, "batch_size": 4, "device": "cpu"}
    whole = predict(model, x, **kw)
    chunked = predict(model, da.from_array(x, chunks=(1, 9, 52, 45)), **kw).compute(
        scheduler="synchronous"
    )
    assert whole.shape == (1, 9, 101, 100)
    assert np.allclose(whole.sum(axis=1), 1.0, atol=1e-5)
    diff = float(np.abs(chunked - whole).max())
    print(f"dask (52x45 chunks) vs numpy: max |prob diff| {diff:.2e}")
    assert diff < 1e-5


def test_engine_tile_equals_bare_network_on_one_window() -> None:
    """One window covering the image: the engine equals the bare net's softmax."""
    from s2cube.models import load_model, predict
    from s2cube.models.dynamicworld import DynamicWorld

    model = load_model("dynamicworld")
    x = _slovenia_reflectance(("20150909",))[0][:, :96, :96]
    probs = predict(model, x, window=96, overlap=0, device="cpu")
    with torch.inference_mode():
        ref = DynamicWorld(load_net())(torch.from_numpy(x)[None]).softmax(1)[0].numpy()
    assert float(np.abs(probs - ref).max()) < 1e-5


# -- CUDA -----------------------------------------------------------------------------------
# These need no rasterio and no data beside the checkout (the device machine has neither):
# synthetic reflectance, the CPU result computed on the same machine. The TF comparison needs
# reference_outputs.npz (S2CUBE_SHARED_MODELS, ../shared/models or ./shared/models).


def _synthetic(n: int, size: int, seed: int = 0) -> np.ndarray:
    """``(n, 9, size, size)`` reflectance: 16 px patches of random spectra plus noise."""
    rng = np.random.default_rng(seed)
    m = -(-size // 16)
    coarse = rng.uniform(0.01, 0.45, (n, 9, m, m)).astype(np.float32)
    x = np.repeat(np.repeat(coarse, 16, axis=2), 16, axis=3)[..., :size, :size]
    return np.clip(x + rng.normal(0, 0.01, x.shape).astype(np.float32), 0, 1)


@pytest.fixture
def no_tf32():
    """Plain fp32 on CUDA: TF32 off for the duration of a test (restored after)."""
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def _logits(net, x: np.ndarray, device: str, dtype=None) -> np.ndarray:
    t = torch.from_numpy(x).to(device)
    with (
        torch.inference_mode(),
        torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None),
    ):
        return net.to(device)(t).float().cpu().numpy()


def _agreement(test: np.ndarray, ref: np.ndarray, margin: float = 0.2) -> tuple[float, float]:
    """Argmax agreement over all pixels, and over pixels whose reference top-2 probability gap
    exceeds ``margin`` (reduced precision may flip near-ties, never clear decisions)."""
    p = torch.from_numpy(ref).softmax(1).numpy() if ref.min() < 0 or ref.max() > 1 else ref
    top2 = np.sort(p, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > margin
    same = test.argmax(1) == ref.argmax(1)
    return float(same.mean()), float(same[clear].mean())


@pytest.mark.gpu
def test_cuda_fp32_equals_cpu_and_bf16_within_bounds(no_tf32) -> None:
    """CUDA fp32 (TF32 off) == CPU fp32 to round-off; bf16 autocast within a looser bound.

    Bounds: fp32 max |logit diff| < 1e-3 and argmax agreement >= 0.9999 (CPU vs TF: 6.7e-6 and
    1.0); bf16 max |prob diff| < 0.1, mean < 5e-3, argmax >= 0.97 overall and >= 0.999 where
    the top-2 gap > 0.2 (CPU bf16 on this synthetic input: 0.029, 7e-4, 0.987 overall; on the
    real dates vs TF 0.024, 6e-4, 0.9986).
    """
    from s2cube.models.dynamicworld import DynamicWorld

    net = DynamicWorld(load_net()).eval()
    x = _synthetic(4, 128)
    cpu = _logits(net, x, "cpu")
    gpu = _logits(net, x, "cuda")
    diff = float(np.abs(gpu - cpu).max())
    agree = float((gpu.argmax(1) == cpu.argmax(1)).mean())
    bf16 = _logits(net, x, "cuda", torch.bfloat16)
    p, q = torch.from_numpy(bf16).softmax(1), torch.from_numpy(cpu).softmax(1)
    pdiff = (p - q).abs()
    bagree, bclear = _agreement(bf16, cpu)
    print(
        f"cuda fp32 vs cpu: max |logit diff| {diff:.2e}, argmax {agree:.5f}; cuda bf16 vs cpu: "
        f"max |prob diff| {float(pdiff.max()):.3f}, mean {float(pdiff.mean()):.1e}, "
        f"argmax {bagree:.5f} ({bclear:.5f} where the top-2 gap > 0.2)"
    )
    assert diff < 1e-3 and agree >= 0.9999
    assert float(pdiff.max()) < 0.1 and float(pdiff.mean()) < 5e-3
    assert bagree >= 0.97 and bclear >= 0.999


def _reference_path() -> Path | None:
    import os

    for root in (
        os.environ.get("S2CUBE_SHARED_MODELS"),
        SHARED / "models",
        Path(__file__).resolve().parents[2] / "shared" / "models",
    ):
        if root and (Path(root) / "dynamicworld" / "reference_outputs.npz").exists():
            return Path(root) / "dynamicworld" / "reference_outputs.npz"
    return None


@pytest.mark.gpu
def test_cuda_fp32_matches_tensorflow(no_tf32) -> None:
    path = _reference_path()
    if path is None:
        pytest.skip("reference_outputs.npz not found (set S2CUBE_SHARED_MODELS)")
    net = load_net()
    with np.load(path) as ref:
        for key in (*DATES, "random"):
            x = ref[f"input_{key}"].transpose(2, 0, 1)[None]
            out = _logits(net, np.ascontiguousarray(x), "cuda")[0].transpose(1, 2, 0)
            diff = float(np.abs(out - ref[f"logits_{key}"]).max())
            agree = float((out.argmax(-1) == ref[f"logits_{key}"].argmax(-1)).mean())
            print(f"{key}: cuda fp32 vs TF max |logit diff| {diff:.2e}, argmax {agree:.5f}")
            assert diff < 1e-3 and agree >= 0.9999


@pytest.mark.gpu
def test_cuda_engine_equals_cpu_engine(no_tf32) -> None:
    """The engine on CUDA (dask chunks, halo window - 1) equals the CPU numpy pass."""
    import dask.array as da

    from s2cube.models import load_model, predict

    model = load_model("dynamicworld")
    x = _synthetic(2, 200, seed=1)
    kw = {"window": 64, "overlap": 16, "batch_size": 8}
    cpu = predict(model, x, device="cpu", **kw)
    lazy = da.from_array(x, chunks=(1, 9, 100, 100))
    gpu = predict(model, lazy, device="cuda", **kw).compute(scheduler="threads")
    diff = float(np.abs(gpu - cpu).max())
    print(f"cuda engine fp32 vs cpu: max |prob diff| {diff:.2e}")
    assert diff < 1e-4
    bf16 = predict(model, lazy, device="cuda", precision="bf16", **kw).compute(scheduler="threads")
    agree, clear = _agreement(bf16, cpu)
    bdiff = float(np.abs(bf16 - cpu).max())
    print(
        f"cuda engine bf16 vs cpu fp32: max |prob diff| {bdiff:.3f}, argmax {agree:.5f} "
        f"({clear:.5f} where the top-2 gap > 0.2)"
    )
    assert bdiff < 0.1 and agree >= 0.97 and clear >= 0.999
