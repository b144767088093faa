"""The window kernel against direct evaluation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from s2cube.errors import InputError
from s2cube.models.tiling import TileLayout, blend_ramp, predict_region, window_starts

torch = pytest.importorskip("torch")


@given(n=st.integers(1, 300), window=st.integers(1, 64), data=st.data())
def test_window_starts_cover_the_axis(n: int, window: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, window - 1))
    starts = window_starts(n, window, overlap)
    covered = np.zeros(max(n, window), dtype=bool)
    for s in starts:
        assert 0 <= s and (s + window <= n or n <= window)
        covered[s : s + window] = True
    assert covered[:n].all()
    assert np.all(np.diff(starts) > 0) and np.all(np.diff(starts) <= window - overlap)


def test_blend_ramp_is_positive_and_symmetric() -> None:
    r = blend_ramp(16, 5)
    assert (r > 0).all() and np.allclose(r, r[::-1]) and r.max() == 1.0


def _run(module):
    """Batch runner for the kernel (torch in, torch out) and for direct numpy calls."""

    def run(batch):
        with torch.no_grad():
            if isinstance(batch, np.ndarray):
                return module(torch.from_numpy(batch)).numpy()
            return module(batch)

    return run


def test_pointwise_model_is_exact_whatever_the_tiling() -> None:
    """A 1×1 network has no context: blending any windows must give its plain output."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.Softmax(dim=1)).eval()
    x = np.random.default_rng(0).random((2, 3, 37, 53), dtype=np.float32)
    direct = _run(net)(x)
    for window, overlap in [(8, 0), (16, 5), (64, 10)]:
        out = predict_region(
            _run(net),
            x,
            slab_origin=(0, 0),
            image_shape=(37, 53),
            core=(0, 37, 0, 53),
            layout=TileLayout(window, overlap, 3),
            n_out=4,
        )
        np.testing.assert_allclose(out, direct, atol=1e-6)


def _whole_image(net, x: np.ndarray) -> np.ndarray:
    """predict_region over all of ``x`` (one slab, 32 px windows, 8 px overlap)."""
    h, w = x.shape[-2:]
    return predict_region(
        _run(net),
        x,
        slab_origin=(0, 0),
        image_shape=(h, w),
        core=(0, h, 0, w),
        layout=TileLayout(32, 8, 4),
        n_out=2,
    )


def test_single_window_equals_one_forward_pass(small_net) -> None:
    x = np.random.default_rng(2).random((1, 3, 32, 32), dtype=np.float32)
    out = _whole_image(small_net, x)
    np.testing.assert_allclose(out, _run(small_net)(x), atol=1e-6)


def test_image_smaller_than_window_is_mirrored(small_net) -> None:
    x = np.random.default_rng(3).random((1, 3, 20, 12), dtype=np.float32)
    out = _whole_image(small_net, x)
    padded = np.pad(x, ((0, 0), (0, 0), (0, 12), (0, 20)), mode="symmetric")
    np.testing.assert_allclose(out, _run(small_net)(padded)[..., :20, :12], atol=1e-6)


def test_subregion_of_full_slab_equals_crop_of_full_result(small_net) -> None:
    x = np.random.default_rng(4).random((1, 3, 50, 45), dtype=np.float32)
    layout = TileLayout(16, 4, 5)
    full = predict_region(
        _run(small_net),
        x,
        slab_origin=(0, 0),
        image_shape=(50, 45),
        core=(0, 50, 0, 45),
        layout=layout,
        n_out=2,
    )
    part = predict_region(
        _run(small_net),
        x,
        slab_origin=(0, 0),
        image_shape=(50, 45),
        core=(7, 31, 20, 45),
        layout=layout,
        n_out=2,
    )
    np.testing.assert_allclose(part, full[..., 7:31, 20:45], atol=1e-6)


def test_bad_layouts_are_rejected() -> None:
    with pytest.raises(InputError, match="overlap"):
        TileLayout(16, 16)
    with pytest.raises(InputError, match="window"):
        TileLayout(0, 0)
