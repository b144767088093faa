"""The global tone curve (v2) against the ESA TCI rule and the PC sigmoidal formula (real data)."""

from __future__ import annotations

import numpy as np
import pytest
from realdata import SHARED_DATA

from s2cube import render
from s2cube.render_metrics import luminance, rendering_metrics

FIXTURE = SHARED_DATA / "s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m" / "sentinel-2-l2a"


def test_curve_is_global_monotone_and_versioned():
    lut = render.tone_curve(np.arange(65536, dtype="uint16"))
    assert lut[0] == 0 and lut[1] <= 1
    assert (np.diff(lut.astype(int)) >= 0).all()
    assert lut[20000] < 255  # reflectance 2.0 still not saturated
    with pytest.raises(TypeError):
        render.tone_curve(np.array([0.1]))
    # the same DN renders the same anywhere: a LUT, no statistics of the input
    a = np.array([[500, 1500]], "uint16")
    assert np.array_equal(
        render.tone_curve(a)[0, 1], render.tone_curve(np.array([1500], "uint16"))[0]
    )
    attrs = render.rendering_attrs()
    assert attrs["tone_curve_version"] == render.TONE_CURVE_VERSION == 2


def _composite() -> tuple[np.ndarray, np.ndarray]:
    """Best-available clear composite of 33TWL (5 dates, clearest first), (y, x, 3) R/G/B."""
    rasterio = pytest.importorskip("rasterio")
    from s2cube.mask import CLEAR, scl_to_mask

    items = sorted(p for p in FIXTURE.iterdir() if "_33TWL_" in p.name)
    out = np.zeros((915, 915, 3), "uint16")
    have = np.zeros((915, 915), bool)
    scenes = []
    for item in items:
        with rasterio.open(item / "SCL.tif") as src:
            clear = scl_to_mask(src.read(1)) == CLEAR
        scenes.append((clear.mean(), item, clear))
    for _, item, clear in sorted(scenes, key=lambda s: -s[0]):
        rgb = []
        for a in ("B04", "B03", "B02"):
            with rasterio.open(item / f"{a}.tif") as src:
                rgb.append(src.read(1))
        rgb_a = np.stack(rgb, axis=-1)
        take = clear & (rgb_a > 0).all(axis=-1) & ~have
        out[take] = rgb_a[take]
        have |= take
    return out, have


@pytest.mark.skipif(not FIXTURE.exists(), reason="real fixture not found")
def test_v2_beats_tci_on_real_data():
    rgb, valid = _composite()
    lum = luminance(rgb)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    m = {
        "tci": rendering_metrics(np.stack([render.tci(c) for c in (r, g, b)], -1), valid, lum),
        "pc": rendering_metrics(render.pc_sigmoidal(r, g, b), valid, lum),
        "v1": rendering_metrics(render.tone_curve_v1(rgb), valid, lum),
        "v2": rendering_metrics(render.tone_curve(rgb), valid, lum),
    }
    v2, tci = m["v2"], m["tci"]
    assert v2["entropy_dark"] > tci["entropy_dark"]
    assert v2["entropy_bright"] > tci["entropy_bright"]
    assert v2["clipped"] < tci["clipped"]
    assert v2["colourfulness"] >= tci["colourfulness"]
    # and v2 fixes what made v1 grey: contrast and colour
    assert v2["rms_contrast"] > m["v1"]["rms_contrast"]
    assert v2["colourfulness"] > m["v1"]["colourfulness"]
    assert v2["colourfulness"] > m["pc"]["colourfulness"]
