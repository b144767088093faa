"""The seed's three land-cover U-nets: combination rule, label sources, resumable training, the
``s2cube train landcover`` command, the dask path, shipped weights and the experimental split."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
rasterio = pytest.importorskip("rasterio")

from s2cube.errors import InputError  # noqa: E402
from s2cube.landcover import LANDCOVER_CODES, SPLIT_CLASSES  # noqa: E402
from s2cube.landcover.built_split import split_built  # noqa: E402
from s2cube.landcover.train import (  # noqa: E402
    NO_LABEL,
    LandcoverTrainConfig,
    allowed_classes,
    block_split,
    labels_from_polygons,
    labels_from_scl,
    labels_from_values,
    train_unet,
)
from s2cube.landcover.unets import (  # noqa: E402
    chain_probabilities,
    combine_unets,
    shipped_unets,
)

W, T, G, B, U = (LANDCOVER_CODES[c] for c in ("water", "tree", "grass", "barren", "built"))
SLOVENIA = "eolearn_testeopatch_slovenia_33N"


def _p2(p: list[float]) -> np.ndarray:
    p1 = np.array(p, np.float32).reshape(1, -1)
    return np.concatenate([1 - p1, p1])[:, None, :]  # (2, 1, n)


def _p3(other: list[float], grass: list[float], tree: list[float]) -> np.ndarray:
    return np.array([other, grass, tree], np.float32)[:, None, :]


def test_combination_rule_known_answers() -> None:
    """Each step of the rule on constructed probabilities, thresholds exclusive."""
    pw = _p2([0.9, 0.5, 0.2, 0.2, 0.1, 0.1, 0.0, 0.6])
    pv = _p3(
        [0.0, 0.1, 0.1, 0.1, 0.1, 0.6, 0.5, 0.0],
        [0.0, 0.2, 0.1, 0.6, 0.45, 0.2, 0.25, 1.0],
        [1.0, 0.7, 0.8, 0.3, 0.45, 0.2, 0.25, 0.0],
    )
    pb = _p2([0.9, 0.3, 0.7, 0.2, 0.0, 0.1, 0.0, 0.0])
    cls, conf = combine_unets(pw, pv, pb)
    # water wins over built; p_water = 0.5 is not > 0.5; built before vegetation; grass > tree;
    # grass = tree -> tree; no model confident -> barren; 0.5 vegetation is not > 0.5 -> barren
    assert cls[0].tolist() == [W, T, U, G, T, B, B, W]
    chain = chain_probabilities(pw, pv, pb)
    np.testing.assert_allclose(chain.sum(axis=0), 1, atol=1e-6)
    assert conf[0, 0] == pytest.approx(0.9)
    assert conf[0, 2] == pytest.approx(0.8 * 0.7)  # (1 - p_w) p_b
    assert conf[0, 3] == pytest.approx(0.8 * 0.8 * 0.6)  # grass
    assert conf[0, 5] == pytest.approx(0.9 * 0.9 * 0.6)  # barren = P(other) of the chain
    # without a buildings model built is never chosen; the built pixel goes to vegetation
    cls_nb, _ = combine_unets(pw, pv)
    assert U not in cls_nb and cls_nb[0, 2] == T
    # a stricter threshold: built 0.7 falls through to vegetation; no data -> 0
    valid = np.array([[1, 1, 1, 1, 1, 1, 1, 0]], bool)
    cls_t, _ = combine_unets(pw, pv, pb, threshold=0.75, valid=valid)
    assert cls_t[0].tolist() == [W, T, T, G, T, B, B, 0]
    with pytest.raises(InputError, match="vegetation probabilities"):
        combine_unets(pw, pv[:2])


def test_label_sources() -> None:
    assert labels_from_scl(np.array([6, 4, 5, 8, 3, 0])).tolist() == [W, 20, 21, 255, 255, 255]
    veg, water, bld = (allowed_classes(m) for m in ("vegetation", "water", "buildings"))
    assert veg[20].tolist() == [False, True, True] and veg[21].tolist() == [True, False, False]
    assert water[20].tolist() == [True, False] and bld[20].tolist() == [True, False]
    assert bld[6].tolist() == [False, True] and not bld[255].any()
    with pytest.raises(InputError, match="unknown class"):
        labels_from_values(np.array([1]), {1: "forest"})
    tr, ho = block_split((100, 50), side="west", fraction=0.2, gap=5)
    assert ho[:, :10].all() and not ho[:, 10:].any() and tr[:, 15:].all() and not tr[:, :15].any()


def test_polygons_reproduce_the_real_label_raster(shared_data) -> None:
    """The Slovenia patch's RABA polygons (GeoPackage), rasterised on its label raster's grid,
    give that raster's classes on every labelled pixel."""
    from s2cube.landcover.train_cli import read_polygons

    root = shared_data / SLOVENIA
    if not root.exists():
        pytest.skip(f"{root} not found")
    geoms, values, crs = read_polygons(root / "lulc_polygons.gpkg", "LULC_ID")
    assert crs == "EPSG:32633" and len(geoms) == 88
    with rasterio.open(root / "lulc_labels.tif") as src:
        raster, transform = src.read(1), src.transform
    mapping = {1: "grass", 2: "tree", 3: "grass", 4: "grass", 8: "built"}
    from_poly = labels_from_polygons(
        geoms, values, mapping, transform=transform, shape=raster.shape
    )
    from_raster = labels_from_values(raster, mapping)
    labelled = from_raster != NO_LABEL
    assert labelled.mean() > 0.98
    np.testing.assert_array_equal(from_poly[labelled], from_raster[labelled])


def _synthetic(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two dates of 96 px NIR-R-G images whose classes follow a label raster (WorldCover-like
    values: 10 tree, 30 grass, 60 bare, 80 water)."""
    rng = np.random.default_rng(seed)
    raster = np.full((96, 96), 30, np.int32)
    raster[8:40, 8:60] = 10
    raster[50:90, 40:80] = 80
    raster[60:90, 5:30] = 60
    spectra = {10: (0.30, 0.03, 0.05), 30: (0.40, 0.06, 0.09), 60: (0.25, 0.20, 0.17)}
    spectra[80] = (0.02, 0.03, 0.04)
    img = np.zeros((2, 3, 96, 96), np.float32)
    for v, s in spectra.items():
        img[:, :, raster == v] = np.array(s, np.float32)[None, :, None]
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    return img, raster


def test_training_from_a_label_raster_resumes_exactly(tmp_path) -> None:
    """Seeded: two epochs, or one epoch then a resumed second, give the same weights; the card
    carries the held-out scores (an east block)."""
    from s2cube.models import load_model

    torch.set_num_threads(1)
    img, raster = _synthetic()
    mapping = {10: "tree", 30: "grass", 60: "barren", 80: "water"}
    labels = np.repeat(labels_from_values(raster, mapping)[None], 2, axis=0)
    tr, ho = block_split(raster.shape, side="east", fraction=0.3, gap=4)
    kw = {"train_area": tr, "held_out": ho, "held_out_data": "east 30 %"}
    cfg = LandcoverTrainConfig(patch=32, stride=16, width=4, batch_size=8, epochs=1)
    first = train_unet(img, labels, "vegetation", tmp_path / "a", config=cfg, **kw)
    assert first.resumed_from == 0 and len(first.history) == 1
    two = LandcoverTrainConfig(patch=32, stride=16, width=4, batch_size=8, epochs=2)
    resumed = train_unet(img, labels, "vegetation", tmp_path / "a", config=two, resume=True, **kw)
    fresh = train_unet(img, labels, "vegetation", tmp_path / "b", config=two, **kw)
    assert resumed.resumed_from == 1
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in fresh.history]
    a, b = load_model(resumed.path).net.state_dict(), load_model(fresh.path).net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    card = json.loads((tmp_path / "a" / "model.json").read_text())
    held = card["metrics"]["held_out"]
    assert held["classes"] == ["other", "grass", "tree"]
    assert held["n_pixels"] == int(np.array(held["confusion"]).sum()) > 0
    assert card["metrics"]["held_out_data"] == "east 30 %"
    # other data or settings refuse to resume
    other = LandcoverTrainConfig(patch=32, stride=16, width=4, batch_size=4, epochs=3)
    with pytest.raises(InputError, match="resume"):
        train_unet(img, labels, "vegetation", tmp_path / "a", config=other, resume=True, **kw)
    # the buildings model cannot train without built labels
    with pytest.raises(InputError, match="built"):
        train_unet(img, labels, "buildings", tmp_path / "c", config=cfg, **kw)


def test_buildings_model_trains_from_user_labels(tmp_path) -> None:
    """No real built labels exist here, so no buildings weights ship; the path still trains from
    user labels (synthetic roofs, residential and industrial both count as built)."""
    torch.set_num_threads(1)
    img, raster = _synthetic(1)
    raster[10:30, 65:90] = 50
    raster[70:85, 85:95] = 51
    img[:, :, raster >= 50] = np.array([0.22, 0.2, 0.19], np.float32)[None, :, None]
    mapping = {10: "tree", 30: "grass", 60: "barren", 80: "water", 50: "industrial"}
    mapping[51] = "residential"
    labels = np.repeat(labels_from_values(raster, mapping)[None], 2, axis=0)
    cfg = LandcoverTrainConfig(patch=32, stride=16, width=4, batch_size=8, epochs=1)
    res = train_unet(img[:, ::-1], labels, "buildings", tmp_path / "b", config=cfg)
    assert res.card.classes == ("other", "built") and res.card.input_bands == (
        "red",
        "green",
        "blue",
    )
    assert res.held_out == {}


def _catalog_bbox_grid(real_catalog):
    """The grid `s2cube train landcover` loads for a small bbox of the real fixture."""
    from s2cube.models.cli import load_catalog_cube

    cube = load_catalog_cube(
        real_catalog, assets=["scl"], resolution=120, bbox=BBOX, bbox_crs="EPSG:4326"
    )
    return cube.attrs["transform"], cube.shape[-2:]


BBOX = (15.95, 46.3, 16.1, 46.42)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "s2cube.cli", "train", "landcover", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _cli_here(*args: str) -> tuple[int, str]:
    """`s2cube train landcover` in this process (no interpreter and torch import per run):
    exit code and output (stdout and stderr), with the traceback of an unexpected error."""
    import traceback

    from click.testing import CliRunner

    from s2cube.cli import main

    res = CliRunner().invoke(main, ["train", "landcover", *args])
    out = res.output
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        out += "".join(traceback.format_exception(*res.exc_info))
    return res.exit_code, out


def test_cli_trains_from_polygons_and_resumes(tmp_path, real_catalog) -> None:
    """`s2cube train landcover` on the real 120 m fixture with GeoJSON polygons (lon/lat) and a
    CSV mapping, one epoch, then resumed to two; with a label raster and a JSON mapping; bad
    input exits 2 with a message.  In process (the command's own code, as a subprocess runs it;
    three interpreter and torch imports less)."""
    from pyproj import Transformer

    transform, (h, w) = _catalog_bbox_grid(real_catalog)
    to_lonlat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)

    def box(r0: int, r1: int, c0: int, c1: int) -> dict:
        xs = [transform.c + c * 120 for c in (c0, c1)]
        ys = [transform.f - r * 120 for r in (r0, r1)]
        corners = [(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]
        ring = [to_lonlat.transform(xs[i], ys[j]) for i, j in corners]
        return {"type": "Polygon", "coordinates": [ring]}

    feats = [  # vertical strips: every class is in the training (northern) part
        ("quarry", box(0, h, 0, w // 4)),
        ("forest", box(0, h, w // 4, w // 2)),
        ("meadow", box(0, h, w // 2, w)),
    ]
    gj = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"landuse": k}, "geometry": g} for k, g in feats
        ],
    }
    (tmp_path / "osm.geojson").write_text(json.dumps(gj))
    (tmp_path / "map.csv").write_text("value,class\nforest,tree\nmeadow,grass\nquarry,barren\n")
    common = [
        str(real_catalog),
        "--model", "vegetation", "--out", str(tmp_path / "run"),
        "--labels-vector", str(tmp_path / "osm.geojson"), "--attribute", "landuse",
        "--mapping", str(tmp_path / "map.csv"),
        "--bbox", *map(str, BBOX), "--patch", "32", "--width", "4", "--batch-size", "8",
        "--max-patches", "40", "--holdout-side", "south", "--holdout-fraction", "0.3",
        "--threads", "1", "--max-items", "4",
    ]  # fmt: skip
    code, out = _cli_here(*common, "--epochs", "1")
    assert code == 0, out
    assert "held-out OA" in out
    code, out = _cli_here(*common, "--epochs", "2", "--resume")
    assert code == 0, out
    assert "resumed after epoch 1" in out
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert "polygons" in card["training_data"] and card["metrics"]["epochs"] == 2
    assert card["metrics"]["held_out"]["n_pixels"] > 0
    # a WorldCover-style label raster at 60 m (warped onto the 120 m grid) + a JSON mapping
    from rasterio.transform import from_origin

    raster = np.full((2 * h, 2 * w), 30, np.uint8)
    raster[:, : 2 * w // 3] = 10
    raster[:, 4 * w // 3 :] = 60
    profile = {"driver": "GTiff", "height": 2 * h, "width": 2 * w, "count": 1, "dtype": "uint8"}
    profile |= {"crs": "EPSG:32633", "transform": from_origin(transform.c, transform.f, 60, 60)}
    with rasterio.open(tmp_path / "wc.tif", "w", **profile) as dst:
        dst.write(raster, 1)
    (tmp_path / "wc.json").write_text('{"10": "tree", "30": "grass", "60": "barren"}')
    i = common.index("--labels-vector")
    from_raster = common[:i] + common[i + 6 :]
    from_raster[from_raster.index(str(tmp_path / "run"))] = str(tmp_path / "raster")
    code, out = _cli_here(*from_raster, "--labels-raster", str(tmp_path / "wc.tif"),
                          "--mapping", str(tmp_path / "wc.json"), "--epochs", "1")  # fmt: skip
    assert code == 0, out
    card = json.loads((tmp_path / "raster" / "model.json").read_text())
    assert "label raster" in card["training_data"] and card["metrics"]["held_out"]["n_pixels"]
    # bad input: exit 2 with a message
    code, out = _cli_here(str(real_catalog), "--model", "buildings", "--out", "x")
    assert code == 2 and "buildings model needs" in out


def test_built_split_known_answers() -> None:
    """EXPERIMENTAL rule: large bright smooth components -> industrial, others residential."""
    cls = np.full((60, 60), G, np.uint8)
    rgb = np.full((3, 60, 60), 0.08, np.float32)
    cls[2:22, 2:22] = U  # 400 px = 4 ha, bright, smooth: industrial
    rgb[:, 2:22, 2:22] = 0.3
    cls[30:50, 30:50] = U  # as large but textured (checkerboard roofs/gardens): residential
    rgb[:, 30:50, 30:50] = np.where(np.indices((20, 20)).sum(0) % 2, 0.35, 0.1)
    cls[2:8, 40:46] = U  # small and bright: residential
    rgb[:, 2:8, 40:46] = 0.3
    cls[40:58, 2:20] = U  # large, smooth but dark: residential
    out = split_built(cls, rgb)
    ind, res = SPLIT_CLASSES["industrial"], SPLIT_CLASSES["residential"]
    assert (out[2:22, 2:22] == ind).all()
    assert (out[30:50, 30:50] == res).all() and (out[2:8, 40:46] == res).all()
    assert (out[40:58, 2:20] == res).all()
    assert (out[cls != U] == cls[cls != U]).all() and U not in out
    # the area threshold scales with the pixel size: at 120 m the small block is 52 ha (its
    # edge texture, 0.058, then decides: residential at the default 0.04, industrial at 0.07)
    assert (split_built(cls, rgb, pixel_size_m=120)[2:8, 40:46] == res).all()
    assert (split_built(cls, rgb, pixel_size_m=120, max_texture=0.07)[2:8, 40:46] == ind).all()
    assert (split_built(cls, rgb, max_texture=0.07)[2:8, 40:46] == res).all()


def _fixture_mosaic(real_catalog, size: int = 96):
    """A small 4-band clear-pixel mosaic (first clear date per pixel) of the 120 m fixture."""
    import xarray as xr

    from s2cube.models.cli import load_catalog_cube

    cube = load_catalog_cube(
        real_catalog,
        assets=["red", "green", "blue", "nir", "scl"],
        resolution=120,
        bbox=(15.7, 46.2, 16.0, 46.45),
        bbox_crs="EPSG:4326",
    ).compute()
    scl = cube.sel(band="scl").values
    clear = np.isin(scl, (4, 5, 6, 7, 11))
    first = clear.argmax(axis=0)
    dn = cube.sel(band=["red", "green", "blue", "nir"]).values
    mosaic = np.take_along_axis(dn, first[None, None], axis=0)[0]
    mosaic = np.where(clear.any(axis=0)[None], mosaic, 0)[:, :size, :size]
    return xr.DataArray(
        mosaic, dims=("band", "y", "x"), coords={"band": ["red", "green", "blue", "nir"]}
    )


@pytest.mark.skipif(
    not {"water", "vegetation"} <= set(shipped_unets()), reason="U-net weights not shipped"
)
def test_landcover_unets_dask_equals_numpy(real_catalog) -> None:
    """The shipped water and vegetation U-nets on a real 4-band mosaic: dask (chunks 40×48,
    halo window - 1) == numpy; a smaller halo changes < 1 % of the classes."""
    from s2cube.landcover import landcover_unets

    torch.set_num_threads(1)
    mosaic = _fixture_mosaic(real_catalog)
    kw = {"window": 64, "overlap": 16, "device": "cpu"}
    ref = landcover_unets(mosaic, **kw)
    lazy = landcover_unets(mosaic.chunk({"y": 40, "x": 48}), **kw)
    out = lazy.compute()
    assert out.landcover.dtype == np.uint8
    np.testing.assert_array_equal(out.landcover.values, ref.landcover.values)
    np.testing.assert_allclose(out.confidence.values, ref.confidence.values, atol=1e-5)
    small = landcover_unets(mosaic.chunk({"y": 40, "x": 48}), halo=16, **kw).compute()
    assert float((small.landcover.values != ref.landcover.values).mean()) < 0.01
    shares = {c: float((ref.landcover.values == k).mean()) for c, k in LANDCOVER_CODES.items()}
    print("class shares (120 m fixture crop, models at 120 m / 10 m):", shares)
    assert shares["tree"] + shares["grass"] > 0.5  # August, rural Slovenia/Croatia


@pytest.mark.skipif("vegetation" not in shipped_unets(), reason="vegetation weights not shipped")
def test_shipped_vegetation_held_out_score_reproduces(shared_data) -> None:
    """The card's held-out RABA score of the shipped vegetation U-net, recomputed."""
    from s2cube.landcover.train import evaluate_unet
    from s2cube.landcover.unets import load_unet

    root = shared_data / SLOVENIA
    if not root.exists():
        pytest.skip(f"{root} not found")
    torch.set_num_threads(1)
    model = load_unet("vegetation")
    toa, clear = [], None
    for date in ("20150711", "20150731", "20150820", "20150830", "20150909"):
        (path,) = sorted((root / "reference_scenes_l1c_13band").glob(f"S2_L1C_TOA_{date}T*.tif"))
        with rasterio.open(path) as src:
            toa.append(src.read([8, 4, 3]))
    with rasterio.open(root / "clm_s2cloudless_mask_68dates.tif") as src:
        clear = src.read(list(range(1, 6))) == 0
    with rasterio.open(root / "lulc_labels.tif") as src:
        raba = src.read(1)
    ref = labels_from_values(raba, {1: "grass", 2: "tree", 3: "grass", 4: "grass", 8: "built"})
    _, held = block_split(ref.shape, side="east", fraction=0.35, gap=4)
    labels = np.where(clear & held[None], ref[None], NO_LABEL).astype(np.uint8)
    got = evaluate_unet(
        model, np.stack(toa).astype(np.float32), labels, "vegetation", window=32, overlap=8
    )
    card = model.card.metrics["held_out"]
    assert got["confusion"] == card["confusion"]
    assert got["overall_accuracy"] == card["overall_accuracy"]


@pytest.mark.parametrize(
    "module",
    [
        "s2cube.landcover.unets",
        "s2cube.landcover.train",
        "s2cube.landcover.built_split",
        "s2cube.landcover.series",
    ],
)
def test_docstring_examples_run(module) -> None:
    import doctest
    import importlib

    result = doctest.testmod(
        importlib.import_module(module), optionflags=doctest.ELLIPSIS, extraglobs={"np": np}
    )
    assert result.attempted > 0 and result.failed == 0


def test_cli_distills_from_dynamic_world(tmp_path) -> None:
    """`--distill` on a nine-band (synthetic sample) catalog: Dynamic World labels the scenes,
    the water U-net trains on them for one epoch and is scored on the held-out block."""
    from s2cube.testing import make_sample_catalog

    catalog = make_sample_catalog(tmp_path / "sample", n_dates=2, size=120, rededge=True)
    run = _cli(
        str(catalog / "catalog.json" if catalog.is_dir() else catalog),
        "--model", "water", "--out", str(tmp_path / "run"), "--distill",
        "--min-confidence", "0.3", "--resolution", "60", "--patch", "32", "--width", "4",
        "--epochs", "1", "--batch-size", "8", "--max-patches", "40", "--threads", "1",
        "--holdout-side", "east",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    card = json.loads((tmp_path / "run" / "model.json").read_text())
    assert "distilled from the fused Dynamic World map" in card["training_data"]
    assert card["metrics"]["held_out"]["n_pixels"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(
    not {"water", "vegetation"} <= set(shipped_unets()), reason="U-net weights not shipped"
)
def test_landcover_unets_cuda_equals_cpu(real_catalog) -> None:
    """The same map on CUDA (fp32, TF32 off) as on the CPU; not run on a GPU by this change."""
    from s2cube.landcover import landcover_unets

    mosaic = _fixture_mosaic(real_catalog)
    kw = {"window": 64, "overlap": 16}
    cpu = landcover_unets(mosaic, device="cpu", **kw)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    gpu = landcover_unets(mosaic.chunk({"y": 48, "x": 48}), device="cuda", **kw).compute()
    assert float((gpu.landcover.values != cpu.landcover.values).mean()) < 1e-3
    np.testing.assert_allclose(gpu.confidence.values, cpu.confidence.values, atol=1e-3)


# --------------------------------------------------------------------------- into the store
STORE_BBOX = ("15.8", "45.95", "15.95", "46.2")  # cells r0175c0783, r0176c0783 (200 px each)
GRID_ARGS = ["--resolution", "1/800", "--cell-size", "0.25"]
CELLS = ["r0175c0783", "r0176c0783"]


def _s2cube(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "s2cube.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _mosaic(store, catalog, bbox, *extra: str) -> subprocess.CompletedProcess[str]:
    run = _s2cube(
        "mosaic", "--catalog", str(catalog), "--bbox", *bbox, "--start", "2023-08-01",
        "--end", "2023-08-31", *GRID_ARGS, "--store", str(store), "--workers", "0",
        "--no-progress", *extra,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run


@pytest.mark.skipif(
    not {"water", "vegetation"} <= set(shipped_unets()), reason="U-net weights not shipped"
)
def test_landcover_store_unets_on_the_mosaic(tmp_path, real_catalog) -> None:
    """`s2cube landcover STORE --model unets` on a real `s2cube mosaic` store (120 m fixture at
    1/800°, two 0.25° cells): each stored cell equals `landcover_unets` run directly on the
    opened mosaic of that cell plus its 32 px halo, exactly (class and confidence); over the
    two-cell region it agrees with one `landcover_unets` pass on >= 97 % of the pixels (tolerance:
    a cell's windows are tiled from its own padded corner and it sees only 32 px of its
    neighbour, the region pass tiles from the region's corner; measured 98.6 %).  A rerun skips
    the finished cells; a wider bbox records a cell the mosaic recorded empty as empty and skips
    (without recording) a cell without a mosaic record; a catalog is refused; `s2cube verify`
    passes."""
    from click.testing import CliRunner

    import s2cube
    from s2cube.cli import main
    from s2cube.grid import Cell
    from s2cube.landcover import landcover_unets
    from s2cube.overviews import build_cell_overviews, build_coarse_overviews
    from s2cube.store import store_grid, write_empty_cell
    from s2cube.store.landcover import read_landcover_manifest

    torch.set_num_threads(1)
    store = tmp_path / "m.zarr"
    _mosaic(store, real_catalog, STORE_BBOX)
    run = _s2cube(
        "landcover", str(store), "--model", "unets", "--bbox", *STORE_BBOX, "--device", "cpu"
    )
    assert run.returncode == 0, run.stderr
    assert "2 cell(s) written, 0 already finished, 0 empty in the mosaic" in run.stdout
    print(run.stdout)

    ds = s2cube.open_store(store, chunks=False)
    grid = store_grid(store)
    records = read_landcover_manifest(store)
    assert sorted(records) == CELLS
    for rec in records.values():
        assert rec["source"] == "mosaic" and rec["model"].startswith("s2cube-unets[water=unet-")
        assert rec["landcover"]["window"] == 128 and rec["mosaic_finished"]
    attrs = ds.attrs["s2cube_landcover"]
    assert attrs["source"] == "mosaic" and attrs["fusion"] == "none (one mosaic)"
    assert attrs["model"] == records[CELLS[0]]["model"]
    rgbn = ds[["red", "green", "blue", "nir"]]
    kw = {"window": 128, "overlap": 32, "device": "cpu"}
    halo = 32
    for name in CELLS:
        win = grid.cell_window(Cell.from_name(name))
        pad = win.pad(halo)
        ref = landcover_unets(rgbn.isel(latitude=pad.rows, longitude=pad.cols), **kw)
        ref_lc = ref.landcover.values[halo:-halo, halo:-halo]
        ref_conf = ref.confidence.values[halo:-halo, halo:-halo]
        cell = ds.isel(latitude=win.rows, longitude=win.cols)
        np.testing.assert_array_equal(cell.landcover.values, ref_lc)
        want_conf = np.where(ref_lc > 0, np.clip(np.rint(ref_conf * 100), 1, 100), 0)
        np.testing.assert_array_equal(cell.landcover_confidence.values, want_conf)
        has_data = (cell[["red", "green", "blue", "nir"]].to_dataarray("b").values > 0).any(0)
        assert has_data.mean() > 0.98
        lc = cell.landcover.values
        assert ((lc >= 1) & (lc <= 5))[has_data].all() and (lc[~has_data] == 0).all()
        np.testing.assert_array_equal(cell.landcover_dates.values, has_data.astype(np.uint8))
    region = grid.cell_window(Cell.from_name(CELLS[0])).union(
        grid.cell_window(Cell.from_name(CELLS[1]))
    )
    pad = region.pad(halo)
    one = landcover_unets(rgbn.isel(latitude=pad.rows, longitude=pad.cols), **kw)
    got = ds.landcover.isel(latitude=region.rows, longitude=region.cols).values
    agree = float((got == one.landcover.values[halo:-halo, halo:-halo]).mean())
    names = {v: k for k, v in LANDCOVER_CODES.items()}
    counts = np.bincount(got.ravel(), minlength=6)
    shares = {names[k]: round(float(counts[k] / counts[1:].sum()), 4) for k in range(1, 6)}
    print(f"store vs one region pass: {100 * agree:.2f} % agree; class shares: {shares}")
    assert agree >= 0.97
    assert shares["tree"] + shares["grass"] > 0.5  # August, rural Slovenia/Croatia

    # a rerun skips both cells (in process: no second torch import)
    invoke = CliRunner().invoke
    again = invoke(main, ["landcover", str(store), "--model", "unets", "--bbox", *STORE_BBOX])
    assert again.exit_code == 0, again.output
    assert "0 cell(s) written, 2 already finished" in again.output
    # a wider bbox: r0175c0784 recorded empty by the mosaic (as `s2cube mosaic` records a cell
    # its scenes reach without a usable pixel: write_empty_cell, under no lease), r0176c0784
    # without a mosaic record: skipped, not recorded
    empty = Cell.from_name("r0175c0784")
    write_empty_cell(store, empty, record={"test": "no usable pixel"})
    build_cell_overviews(store, empty)
    build_coarse_overviews(store, [empty])
    wide = ("15.8", "45.95", "16.05", "46.2")
    more = invoke(main, ["landcover", str(store), "--model", "unets", "--bbox", *wide])
    assert more.exit_code == 0, more.output
    assert "0 cell(s) written, 2 already finished, 1 empty in the mosaic" in more.output
    assert "1 cell(s) skipped, no finished mosaic cell there" in more.output
    assert more.output.rstrip().splitlines()[1].endswith("again): r0176c0784")
    records = read_landcover_manifest(store)
    assert sorted(records) == sorted([*CELLS, "r0175c0784"])
    assert records["r0175c0784"]["empty"] and records["r0175c0784"]["mosaic_empty"]
    # a catalog is refused with a message, not ignored
    bad = invoke(main, ["landcover", str(store), "--model", "unets", "--bbox", *STORE_BBOX,
                        "-c", str(real_catalog)])  # fmt: skip
    assert bad.exit_code == 2 and "takes no catalog" in bad.output
    ver = _s2cube("verify", str(store))
    assert ver.returncode == 0, ver.stdout + ver.stderr


@pytest.mark.skipif(
    not {"water", "vegetation"} <= set(shipped_unets()), reason="U-net weights not shipped"
)
def test_mosaic_landcover_flag_equals_the_command_and_resumes(tmp_path, real_catalog) -> None:
    """`s2cube mosaic ... --landcover unets` (``MosaicConfig.landcover``) runs the land-cover
    stage after the mosaic, into the same store: the same map as the mosaic followed by
    `s2cube landcover` (test above), and asking for it on a finished mosaic is a resume that
    adds the land cover without redoing the mosaic (the option does not change its pixels)."""
    import s2cube
    from s2cube.store import read_manifest
    from s2cube.store.landcover import read_landcover_manifest

    a, b = tmp_path / "a.zarr", tmp_path / "b.zarr"
    run = _mosaic(a, real_catalog, STORE_BBOX, "--landcover", "unets")
    assert "2 cell(s) written" in run.stdout
    assert "land cover (unets): 2 cell(s) written, 0 already finished" in run.stdout
    assert sorted(read_landcover_manifest(a)) == CELLS
    assert {r["config"]["landcover"] for r in read_manifest(a).values()} == {"unets"}

    _mosaic(b, real_catalog, STORE_BBOX)  # no land cover
    again = _mosaic(b, real_catalog, STORE_BBOX, "--landcover", "unets")
    assert "0 cell(s) written, 2 already finished" in again.stdout
    assert "land cover (unets): 2 cell(s) written" in again.stdout
    box = tuple(float(v) for v in STORE_BBOX)
    da, db = (s2cube.open_store(s, bbox=box, chunks=False) for s in (a, b))
    for var in ("red", "nir", "landcover", "landcover_confidence", "landcover_dates"):
        np.testing.assert_array_equal(da[var].values, db[var].values, err_msg=var)
    assert (da.landcover.values > 0).mean() > 0.98


@pytest.mark.skipif(
    not {"water", "vegetation"} <= set(shipped_unets()), reason="U-net weights not shipped"
)
def test_landcover_store_with_user_unets_and_resume_guard(tmp_path, real_catalog) -> None:
    """A user's trained buildings U-net (`s2cube train landcover --model buildings` output; no
    buildings weights ship) joins the shipped water and vegetation U-nets in the store run:
    `--buildings model.pt`.  Each cell equals `landcover_unets(..., buildings=model.pt)` on the
    cell plus its halo, exactly; the record names every weights file (the user's by sha256).
    A rerun with other weights or other options is refused (it would mix two maps) until
    --overwrite; bad weights are refused with the value and the fix."""
    from click.testing import CliRunner

    import s2cube
    from s2cube.cli import main
    from s2cube.grid import Cell
    from s2cube.landcover import landcover_unets
    from s2cube.store import store_grid
    from s2cube.store.landcover import read_landcover_manifest

    torch.set_num_threads(1)
    # a small buildings model from user labels (synthetic roofs): what it predicts is not the
    # point; that the store run uses exactly it is
    img, raster = _synthetic(2)
    raster[10:30, 65:90] = 50
    img[:, :, raster >= 50] = np.array([0.22, 0.2, 0.19], np.float32)[None, :, None]
    mapping = {10: "tree", 30: "grass", 60: "barren", 80: "water", 50: "industrial"}
    labels = np.repeat(labels_from_values(raster, mapping)[None], 2, axis=0)
    cfg = LandcoverTrainConfig(patch=32, stride=16, width=4, batch_size=8, epochs=1)
    pt = train_unet(img[:, ::-1], labels, "buildings", tmp_path / "b", config=cfg).path

    store = tmp_path / "m.zarr"
    _mosaic(store, real_catalog, STORE_BBOX)
    invoke = CliRunner().invoke
    base = ["landcover", str(store), "--model", "unets", "--bbox", *STORE_BBOX, "--device", "cpu"]
    first = invoke(main, base)
    assert first.exit_code == 0, first.output
    shipped_model = read_landcover_manifest(store)[CELLS[0]]["model"]
    assert "buildings=" not in shipped_model
    # other weights, or another window, on finished cells: refused, nothing written
    for extra, what in (
        (["--buildings", str(pt)], "model="),
        (["--window", "64"], "window=128"),
    ):
        res = invoke(main, [*base, *extra])
        assert res.exit_code == 2, res.output
        assert "mix two maps" in res.output and "--overwrite" in res.output and what in res.output
    assert read_landcover_manifest(store)[CELLS[0]]["model"] == shipped_model
    # bad weights: a missing file, a model of the wrong member
    res = invoke(main, [*base, "--overwrite", "--buildings", str(tmp_path / "nope.pt")])
    assert res.exit_code == 2 and "nope.pt" in res.output and "is not a file" in res.output
    res = invoke(main, [*base, "--overwrite", "--water", str(pt)])
    assert res.exit_code == 2 and "the water U-net has" in res.output, res.output
    res = invoke(main, ["landcover", str(store), "--bbox", *STORE_BBOX, "--buildings", str(pt)])
    assert res.exit_code == 2 and "for --model unets" in res.output, res.output
    # --overwrite with the user's buildings model: exactly landcover_unets with it
    ok = invoke(main, [*base, "--overwrite", "--buildings", str(pt)])
    assert ok.exit_code == 0, ok.output
    assert "2 cell(s) written" in ok.output
    records = read_landcover_manifest(store)
    model = records[CELLS[0]]["model"]
    assert "buildings=" in model and "sha256:" in model and model.startswith("s2cube-unets[water")
    ds = s2cube.open_store(store, chunks=False)
    grid = store_grid(store)
    rgbn = ds[["red", "green", "blue", "nir"]]
    halo = 32
    for name in CELLS:
        win = grid.cell_window(Cell.from_name(name))
        pad = win.pad(halo)
        ref = landcover_unets(
            rgbn.isel(latitude=pad.rows, longitude=pad.cols),
            buildings=str(pt),
            window=128,
            overlap=32,
            device="cpu",
        )
        cell = ds.isel(latitude=win.rows, longitude=win.cols)
        np.testing.assert_array_equal(
            cell.landcover.values, ref.landcover.values[halo:-halo, halo:-halo]
        )
    # the same weights again: a resume
    again = invoke(main, [*base, "--buildings", str(pt)])
    assert again.exit_code == 0 and "0 cell(s) written, 2 already finished" in again.output
