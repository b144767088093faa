"""Super-resolution metrics and the Wald degradation on known answers (issue 13, part 1).

Images are a real held-out crop of the 120 m fixture (33TWL, 2023-08-15, clear; the east
block that training never saw), in reflectance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2cube.superres import metrics as M
from s2cube.superres.degrade import degrade, mtf_sigma

SCENE = "S2A_33TWL_20230815_0_L2A"
#: a crop inside the held-out (east) test block of the shipped model's split
ROWS, COLS = slice(100, 292), slice(700, 892)


@pytest.fixture(scope="module")
def hr(real_catalog: Path) -> np.ndarray:
    import rasterio

    folder = real_catalog.parent / "sentinel-2-l2a" / SCENE
    bands = []
    for name in ("B04", "B03", "B02", "B08"):  # red, green, blue, nir
        with rasterio.open(folder / f"{name}.tif") as src:
            window = ((ROWS.start, ROWS.stop), (COLS.start, COLS.stop))
            bands.append(src.read(1, window=window))
    arr = np.stack(bands).astype(np.float64) / 10000.0
    assert (arr > 0).all()
    return arr


def _bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    from scipy.ndimage import zoom

    return np.stack([zoom(b, scale, order=3, mode="mirror", grid_mode=True) for b in lr])


# ------------------------------------------------------------------ the degradation
def test_degradation_matches_the_mtf_at_nyquist() -> None:
    """A cosine at the coarse grid's Nyquist frequency, peaked on the block centres, keeps
    MTF(Nyquist) ≈ 0.25 of its amplitude (the discrete block mean and taps: ±0.03)."""
    s = 4
    x = np.arange(64 * s)
    wave = np.cos(np.pi * (x - (s - 1) / 2) / s)  # period 2·s fine px
    img = 0.3 + 0.1 * np.tile(wave, (8 * s, 1))
    low = degrade(img, s)
    amp = np.abs(low[2:-2, 4:-4] - 0.3).mean() / 0.1
    assert amp == pytest.approx(0.25, abs=0.03)
    assert mtf_sigma(4, 0.25) == pytest.approx(1.741, abs=1e-3)


def test_degradation_numpy_equals_torch(hr: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    from s2cube.superres.degrade import degrade_torch

    want = degrade(hr[:, :64, :48], 4)
    got = degrade_torch(torch.from_numpy(hr[None, :, :64, :48]), 4)[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert degrade(np.full((2, 8, 12), 0.2), 4) == pytest.approx(0.2)


def test_degradation_bad_input() -> None:
    from s2cube.errors import InputError

    with pytest.raises(InputError, match="multiple of the scale"):
        degrade(np.zeros((1, 10, 8)), 4)
    with pytest.raises(InputError, match="mtf=0.9"):
        mtf_sigma(4, 0.9)


# ------------------------------------------------------------------ fidelity metrics
def test_identity_is_perfect(hr: np.ndarray) -> None:
    lr = degrade(hr, 4)
    assert M.psnr(hr, hr) == np.inf
    assert M.ssim(hr, hr) == pytest.approx(1.0)
    assert M.sam(hr, hr) == pytest.approx(0.0, abs=1e-6)
    scores = M.correctness(lr, hr, hr)
    assert scores["improvement"] > 0.9
    assert sum(scores.values()) == pytest.approx(1.0)


def test_psnr_sam_known_values() -> None:
    a = np.full((3, 4, 4), 0.2)
    assert M.psnr(a, a + 0.01) == pytest.approx(40.0)
    b = a.copy()
    b[0] = 0.0  # (0.2, 0.2, 0.2) vs (0, 0.2, 0.2): arccos(2/sqrt(6))
    assert M.sam(a, b) == pytest.approx(np.degrees(np.arccos(2 / np.sqrt(6))))


def test_bicubic_sits_between_nearest_and_truth(hr: np.ndarray) -> None:
    lr = degrade(hr, 4)
    bic = _bicubic(lr, 4)
    near = np.repeat(np.repeat(lr, 4, axis=1), 4, axis=2)
    assert M.psnr(hr, near) < M.psnr(hr, bic) < 40
    assert M.ssim(hr, near) < M.ssim(hr, bic) < 1
    # the input upsampled adds nothing: omission dominates, improvement is small
    s_bic = M.correctness(lr, bic, hr)
    assert s_bic["omission"] > 0.5 > s_bic["improvement"]
    # without the harmonisation (histogram matching, which reshapes it) it is all omission
    s_up = M.correctness(lr, M.upsample_bilinear(lr, 4), hr, harmonise=False)
    assert s_up["omission"] > 0.9


def test_fake_texture_raises_hallucination(hr: np.ndarray) -> None:
    lr = degrade(hr, 4)
    bic = _bicubic(lr, 4)
    rng = np.random.default_rng(0)
    texture = bic * (1 + 0.3 * rng.standard_normal(bic.shape))  # invented detail, ±30 %
    base = M.correctness(lr, bic, hr)["hallucination"]
    fake = M.correctness(lr, texture, hr)
    assert fake["hallucination"] > base + 0.2
    assert fake["hallucination"] > max(fake["improvement"], fake["omission"])


def test_blur_raises_omission(hr: np.ndarray) -> None:
    from scipy.ndimage import gaussian_filter

    lr = degrade(hr, 4)
    sharp = M.correctness(lr, hr, hr)
    blurred = M.correctness(lr, gaussian_filter(hr, (0, 3, 3)), hr)
    assert blurred["omission"] > sharp["omission"] + 0.3


def test_consistency(hr: np.ndarray) -> None:
    lr = degrade(hr, 4)
    # the truth is consistent with its own Wald degradation, exactly
    assert M.consistency(lr, hr)["reflectance_wald"] == pytest.approx(0.0, abs=1e-12)
    # the opensr operators: a constant survives both resamplings unchanged
    flat = np.full((4, 8, 8), 0.25)
    np.testing.assert_allclose(M.downsample_bilinear_aa(M.upsample_bilinear(flat, 4), 4), flat)
    # a brightened SR is inconsistent by the offset, in every definition
    c = M.consistency(lr, hr + 0.01)
    assert c["reflectance_wald"] == pytest.approx(0.01)
    assert c["reflectance"] > 0.005


def test_metrics_bad_input() -> None:
    from s2cube.errors import InputError

    with pytest.raises(InputError, match="differ"):
        M.psnr(np.zeros((1, 4, 4)), np.zeros((1, 4, 5)))
    with pytest.raises(InputError, match="integer scale"):
        M.consistency(np.zeros((1, 4, 4)), np.zeros((1, 10, 10)))
