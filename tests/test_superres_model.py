"""The super-resolution networks and the model API (issue 13, part 1)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from s2cube.errors import InputError  # noqa: E402
from s2cube.superres import model  # noqa: E402
from s2cube.superres.nets import Discriminator, Generator  # noqa: E402


@pytest.mark.parametrize("scale", [2, 4])
def test_generator_shapes_and_attributes(scale: int) -> None:
    torch.manual_seed(0)
    gen = Generator(scale=scale, bands=4, features=8, blocks=2)
    assert (gen.scale, gen.bands, gen.features, gen.blocks) == (scale, 4, 8, 2)
    y = gen(torch.rand(2, 4, 7, 5))
    assert y.shape == (2, 4, 7 * scale, 5 * scale) and y.dtype == torch.float32


def test_untrained_generator_is_near_bicubic() -> None:
    """The input skip: before training, the output is the bicubic upsampling plus a tiny
    correction (the tail starts near zero), not noise."""
    torch.manual_seed(0)
    gen = Generator(scale=4, features=16, blocks=2).eval()
    x = torch.rand(1, 4, 12, 12) * 0.4
    bic = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert float((gen(x) - bic).abs().max()) < 0.02


def test_generator_rejects_bad_scale() -> None:
    with pytest.raises(ValueError, match="power of two"):
        Generator(scale=3)


def test_discriminator_is_fully_convolutional() -> None:
    disc = Discriminator(bands=4, features=8, downsamplings=2)
    assert disc(torch.zeros(3, 4, 32, 48)).shape == (3, 1, 8, 12)


def test_normalisation_round_trip() -> None:
    dn = np.array([[1, 137, 4000, 10000, 65535]], dtype="uint16")
    x = model.to_input(dn)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(model.from_output(x), dn)
    assert model.to_input(np.zeros(3, "uint16")).tolist() == [0.0, 0.0, 0.0]
    # data never becomes nodata, and saturates instead of wrapping
    assert model.from_output(np.array([-1.0, 0.0, 7.0])).tolist() == [1, 1, 65535]


def test_context_pixels_bounds_the_receptive_field() -> None:
    """Perturbing one input pixel changes the output only within context_pixels of it, and
    the bound is tight to within one pixel (gradient of the output w.r.t. the input)."""
    torch.manual_seed(0)
    gen = Generator(scale=2, features=8, blocks=2).eval()
    for p in gen.parameters():  # no near-zero branch: every path must show up in the gradient
        p.data.normal_(0, 0.2)
    r = model.context_pixels(gen)
    x = torch.rand(1, 4, 41, 41, requires_grad=True)
    gen(x)[0, :, 40, 40].sum().backward()  # output pixel 40 at x2 = input pixel 20
    assert x.grad is not None
    rows, cols = np.nonzero(x.grad[0].abs().sum(0).numpy())
    reach = max(np.abs(rows - 20).max(), np.abs(cols - 20).max())
    assert r - 1 <= reach <= r


def test_no_shipped_weights_message() -> None:
    with pytest.raises(InputError, match=r"scale=3 has no shipped .*shipped: "):
        model.load_generator(3)
    assert all(isinstance(s, int) for s in model.shipped_scales())


# --------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def real_patches(real_catalog: object) -> np.ndarray:
    """24 clear 32 px patches of a real scene (33TWM, 2023-08-15; training area), uint16."""
    from pathlib import Path

    import rasterio

    folder = Path(str(real_catalog)).parent / "sentinel-2-l2a" / "S2A_33TWM_20230815_0_L2A"
    bands = []
    for name in ("B04", "B03", "B02", "B08"):
        with rasterio.open(folder / f"{name}.tif") as src:
            bands.append(src.read(1, window=((200, 328), (100, 356))))
    from s2cube.superres.train import clear_patches

    patches, where = clear_patches(np.stack(bands)[None], None, patch=32)
    assert len(patches) == 24 and where.shape == (24, 3)  # the rest touch a nodata wedge
    return patches


def _config(**kw: object) -> object:
    from s2cube.superres.train import SRTrainConfig

    base = dict(scale=4, features=8, blocks=1, patch=32, batch_size=4, epochs=2, gan_start=2,
                steps_per_epoch=2, disc_features=8, seed=7, device="cpu")  # fmt: skip
    return SRTrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_training_is_seeded_and_resumes_to_the_same_state(
    real_patches: np.ndarray, tmp_path: object
) -> None:
    """Two epochs (SRResNet warm-up, then GAN) straight through == one epoch, then --resume."""
    from pathlib import Path

    from s2cube.superres.train import train_sr

    tmp = Path(str(tmp_path))
    train, val = real_patches[:18], real_patches[18:]
    straight = train_sr(train, val, tmp / "a", config=_config())
    train_sr(train, val, tmp / "b", config=_config(epochs=1))
    resumed = train_sr(train, val, tmp / "b", config=_config(), resume=True)
    assert [h["phase_gan"] for h in resumed.history] == [0.0, 1.0]
    a = torch.load(straight.checkpoint_path, weights_only=False)
    b = torch.load(resumed.checkpoint_path, weights_only=False)
    for key in ("generator", "discriminator"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), (key, name)
    for ha, hb in zip(a["history"], b["history"], strict=True):
        assert {k: v for k, v in ha.items() if k != "seconds"} == {
            k: v for k, v in hb.items() if k != "seconds"
        }
    assert all(h["seconds"] > 0 for h in a["history"])
    # the best generator loads into the documented architecture
    gen = Generator(scale=4, bands=4, features=8, blocks=1)
    gen.load_state_dict(torch.load(straight.generator_path, weights_only=True))


def test_cosine_schedule_falls_from_lr_to_lr_min() -> None:
    from s2cube.superres.train import learning_rate

    cfg = _config(lr=1e-3, lr_schedule="cosine", lr_min=1e-5, epochs=3)
    rates = [learning_rate(cfg, e, s, 10) for e in (1, 2, 3) for s in range(10)]
    assert rates[0] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False))
    assert rates[-1] == pytest.approx(1e-5, abs=3e-5)  # the last step is one step short of the end
    assert rates[15] == pytest.approx((1e-3 + 1e-5) / 2)  # half way
    assert learning_rate(_config(lr=3e-4), 2, 5, 10) == 3e-4  # constant


def test_cosine_run_interrupted_resumes_to_the_same_state(
    real_patches: np.ndarray, tmp_path: object
) -> None:
    """A cosine run killed after its first epoch, resumed, ends where the straight run does."""
    from pathlib import Path

    from s2cube.superres.train import train_sr

    tmp = Path(str(tmp_path))
    train, val = real_patches[:18], real_patches[18:]
    cfg = _config(lr_schedule="cosine", lr_min=1e-5, gan_start=3)
    straight = train_sr(train, val, tmp / "a", config=cfg)

    def stop(line: str) -> None:
        raise KeyboardInterrupt(line)

    with pytest.raises(KeyboardInterrupt, match="epoch 1/2"):
        train_sr(train, val, tmp / "b", config=cfg, log=stop)
    resumed = train_sr(train, val, tmp / "b", config=cfg, resume=True)
    a = torch.load(straight.checkpoint_path, weights_only=False)
    b = torch.load(resumed.checkpoint_path, weights_only=False)
    for name, tensor in a["generator"].items():
        assert torch.equal(tensor, b["generator"][name]), name
    assert [h["lr_end"] for h in a["history"]] == [h["lr_end"] for h in b["history"]]
    assert a["history"][1]["lr_end"] < a["history"][0]["lr_end"] < 2e-4
    # a cosine schedule spans the run: extending it on resume is refused
    with pytest.raises(InputError, match="other options"):
        train_sr(
            train,
            val,
            tmp / "b",
            config=_config(lr_schedule="cosine", lr_min=1e-5, gan_start=3, epochs=3),
            resume=True,
        )


def test_checkpoint_from_before_the_schedule_options_resumes(
    real_patches: np.ndarray, tmp_path: object
) -> None:
    """A checkpoint written before ``lr_schedule``/``lr_min``/``pixel_loss`` existed resumes
    as a constant-rate L1 run (the defaults it was made with), and not as another run."""
    from pathlib import Path

    from s2cube.superres.train import train_sr

    tmp = Path(str(tmp_path))
    train, val = real_patches[:18], real_patches[18:]
    train_sr(train, val, tmp / "old", config=_config(epochs=1, gan_start=5))
    ckpt = tmp / "old" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=False)
    for key in ("lr_schedule", "lr_min", "pixel_loss"):
        del state["config"][key]
    torch.save(state, ckpt)
    resumed = train_sr(train, val, tmp / "old", config=_config(gan_start=5), resume=True)
    assert len(resumed.history) == 2
    with pytest.raises(InputError, match="other options"):
        train_sr(train, val, tmp / "old", config=_config(gan_start=5, pixel_loss="mse"),
                 resume=True)  # fmt: skip


def test_mse_loss_trains_on_the_squared_error(real_patches: np.ndarray, tmp_path: object) -> None:
    """``pixel_loss="mse"`` (SRResNet's loss) trains other weights than L1 from the same seed."""
    from pathlib import Path

    from s2cube.superres.train import train_sr

    tmp = Path(str(tmp_path))
    train, val = real_patches[:18], real_patches[18:]
    cfg = dict(epochs=1, gan_start=5, steps_per_epoch=3)
    a = train_sr(train, val, tmp / "l1", config=_config(**cfg))
    b = train_sr(train, val, tmp / "mse", config=_config(pixel_loss="mse", **cfg))
    wa = torch.load(a.generator_path, weights_only=True)
    wb = torch.load(b.generator_path, weights_only=True)
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)
    assert np.isfinite(b.history[0]["val_psnr"])


def test_training_bad_input(real_patches: np.ndarray, tmp_path: object) -> None:
    from pathlib import Path

    from s2cube.superres.train import SRTrainConfig, train_sr

    with pytest.raises(InputError, match="patch=30 must be a multiple of scale=4"):
        SRTrainConfig(patch=30)
    with pytest.raises(InputError, match="pixel_loss='l2'"):
        SRTrainConfig(pixel_loss="l2")
    with pytest.raises(InputError, match="lr_schedule='step'"):
        SRTrainConfig(lr_schedule="step")
    with pytest.raises(InputError, match="lr_min=0.1"):
        SRTrainConfig(lr_min=0.1)
    with pytest.raises(InputError, match="expected"):
        train_sr(real_patches[:, :, :16, :16], real_patches, Path(str(tmp_path)), config=_config())
    with pytest.raises(InputError, match="init='nothing.pt' is not a file"):
        train_sr(real_patches, real_patches, Path(str(tmp_path)) / "y",
                 config=_config(init="nothing.pt"))  # fmt: skip
    with pytest.raises(InputError, match="no checkpoint"):
        train_sr(real_patches, real_patches, Path(str(tmp_path)) / "x", config=_config(),
                 resume=True)  # fmt: skip
