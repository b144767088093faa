"""Networks, model cards and weights I/O."""

from __future__ import annotations

import numpy as np
import pytest

from s2cube.errors import InputError
from s2cube.models import LoadedModel, ModelCard, load_model, predict, save_model
from s2cube.models.nets import CloudUNet, HazeNet, VGG16UNet

torch = pytest.importorskip("torch")


def test_vgg16_unet_has_the_tasar_layout() -> None:
    net = VGG16UNet(4, 6, width=4)
    convs = lambda m: [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]  # noqa: E731
    assert len(convs(net.encoder)) == 13
    assert len(convs(net.centre)) == 2
    assert len(convs(net.decoder)) == 13
    assert net(torch.zeros(1, 4, 64, 64)).shape == (1, 6, 64, 64)
    full = VGG16UNet(3, 6)  # VGG16 widths: 64 ... 512
    # the first conv of each encoder block (a ModuleList holds plain Modules, not Sequentials)
    assert [next(b.children()).out_channels for b in full.encoder] == [64, 128, 256, 512, 512]


def test_haze_net_has_three_conv_layers() -> None:
    net = HazeNet(4)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.features) == 3
    assert net.classify(torch.zeros(2, 4, 16, 16)).shape == (2, 2)


def test_save_and_load_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    card = ModelCard(
        name="t",
        input_bands=("red", "nir"),
        classes=("clear", "cloud"),
        normalisation={"kind": "standardise", "mean": [0.1, 0.2], "std": [0.3, 0.4]},
        architecture="cloud-unet",
        arch_kwargs={"in_channels": 2, "n_classes": 2, "width": 4, "depth": 2},
        resolution_m=120,
        training_data="synthetic",
        licence="Apache-2.0",
    )
    model = LoadedModel(CloudUNet(2, 2, width=4, depth=2).eval(), card)
    path = save_model(model, tmp_path / "m.pt")
    assert ModelCard.from_json(tmp_path / "m.json") == card
    again = load_model(path)
    assert again.card == card
    x = np.random.default_rng(0).random((2, 32, 32), dtype=np.float32)
    np.testing.assert_allclose(
        predict(again, x, window=16, overlap=4), predict(model, x, window=16, overlap=4), atol=1e-6
    )


def test_unknown_names_and_bad_cards_are_explained(tmp_path) -> None:
    with pytest.raises(InputError, match="csmask-l2a-4b"):
        load_model("no-such-model")
    with pytest.raises(InputError, match="normalisation"):
        ModelCard(
            name="x",
            input_bands=("red",),
            classes=("a",),
            normalisation={"kind": "standardise", "mean": [0, 1], "std": [1, 1]},
        )
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match="cannot read"):
        load_model(tmp_path / "junk.pt")
