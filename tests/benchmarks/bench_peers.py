"""s2cube's production path against the cloud-free composites people use, one process.

Same input (the items, in s2cube's priority order), same output grid (the cell of the global
EPSG:4326 grid), same machine.  For each case it prints wall time (best of ``--repeat``,
untraced), peak traced memory (tracemalloc: numpy and GDAL read buffers), raster bytes fetched
over HTTP (the COGs served by a local byte-range server, as from object storage), Mpix/s of
output, the ratio to the production path, and the fraction of output pixels (with data in both)
whose four bands equal s2cube's priority kernel.  Systems:

* ``production``: ``s2cube.composite_cell`` (survey, plan, harmonize, feathered blend), as
  ``s2cube mosaic`` writes it, survey included;
* ``production-bare`` (opt-in, ``--systems``): the same planned composite without
  harmonization, haze demotion or feathering: an SCL-only survey, the planned reads and the
  first clear pixel.  Not a peer: what the production path costs without its quality features,
  i.e. the floor its planned reads and survey set;
* ``priority``: s2cube's priority kernel alone (load → mask → composite, every scene read);
* ``median``: ``s2cube.load`` (stackstac through s2cube's own reader, the gather of
  ``s2cube.reader.gather``) → ``where(SCL clear).median("time")``; every speed-up of that
  reader speeds this baseline up too;
* ``median-odc`` (opt-in): ``odc.stac.load`` onto the cell's GeoBox (GDAL's warp) → the same
  masked median: a median as a user without s2cube computes it;
* ``odc-stac``: ``odc.stac.load`` onto the cell's GeoBox + first valid (SCL clear) pixel;
* ``stackstac.mosaic``: ``stackstac.stack`` → ``where(SCL clear)`` → ``stackstac.mosaic``;
* ``first-utm``: s2mosaic's ``first`` algorithm on the tiles' own UTM grids (per tile: scenes in
  order, SCL clear and not yet filled, stop when the tile's footprint is full).  s2mosaic 1.1.0
  itself cannot run here (it needs OmniCloudMask weights from the network and torchvision, and
  hard-codes 10980 px tiles), so its loop is re-implemented with rasterio, whole-tile reads as
  s2mosaic does.  Its output is on other grids: no pixel comparison.

Peers get the BOA offset removed per scene (as s2cube does), so pixel agreement measures which
observation each system picks, not the radiometric scale.  Numbers are printed, never asserted.

Usage::

    python tests/benchmarks/bench_peers.py [--quick] [--repeat N] [--sizes 8,16,32,64]
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import dask
import numpy as np

warnings.filterwarnings("ignore")

REPO = Path(__file__).resolve().parents[2]
REAL = (
    REPO.parent / "shared" / "data" / "s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m" / "catalog.json"
)
BANDS = ("red", "green", "blue", "nir")
#: SCL classes a peer counts as clear (vegetation, bare, water, unclassified, snow; as the
#: median of bench_composite)
CLEAR_SCL = (2, 4, 5, 6, 7, 11)
SYSTEMS = ("production", "priority", "median", "odc-stac", "stackstac.mosaic", "first-utm")
#: run only when named in ``--systems``
EXTRA_SYSTEMS = ("production-bare", "median-odc")
#: rows that are s2cube itself, not peers
OWN = ("production", "production-bare", "priority")


def _bench_composite() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_composite", Path(__file__).with_name("bench_composite.py")
    )
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _first_valid(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``values`` (time, band, y, x), ``valid`` (time, y, x): the first valid observation."""
    if values.shape[0] == 0:
        return np.zeros(values.shape[1:], values.dtype)
    idx = np.argmax(valid, axis=0)
    out = np.take_along_axis(values, idx[None, None], axis=0)[0]
    out[:, ~valid.any(axis=0)] = 0
    return out


def _offsets(items) -> np.ndarray:
    return np.array([int(it.properties.get("s2cube:boa_offset", 0)) for it in items], "int32")


# --------------------------------------------------------------------------- systems
def make_systems(items, grid, cell) -> dict[str, Callable[[Any], np.ndarray]]:
    """``system -> fn(items) -> (band, y, x) uint16`` on the cell (first-utm: its own grids)."""
    import s2cube
    from s2cube.cube import remove_boa_offset
    from s2cube.reader import request_bounds

    window = grid.cell_window(cell)
    cfg = s2cube.MosaicConfig()
    bare = s2cube.MosaicConfig(harmonize="none", haze_threshold=None, blend="none")

    def planned(config, splits: list[tuple[float, float]]):
        def run(items=items):
            t0 = time.perf_counter()
            lazy = s2cube.composite_cell(items, cell, grid=grid, config=config)
            t1 = time.perf_counter()
            ds = lazy.compute()
            splits.append((t1 - t0, time.perf_counter() - t1))  # plan, compute
            return np.stack([ds[b].values for b in BANDS])

        run.splits = splits  # type: ignore[attr-defined]
        return run

    production = planned(cfg, [])
    production_bare = planned(bare, [])

    def priority(items=items):
        cube = s2cube.load(items, cell, grid=grid, halo=2)
        codes = s2cube.mask(cube, dilation=2)
        plain = {"harmonize": "none", "blend": "none", "haze_threshold": None}
        ds = (
            s2cube.composite(cube, codes, **plain)
            .isel(latitude=slice(2, -2), longitude=slice(2, -2))
            .compute()
        )
        return np.stack([ds[b].values for b in BANDS])

    def median(items=items):
        cube = s2cube.load(items, cell, grid=grid)
        clear = cube.sel(band="scl").isin(list(CLEAR_SCL))
        refl = cube.sel(band=list(BANDS))
        med = refl.where(clear & (refl > 0)).median("time").compute()
        return np.nan_to_num(med.values).astype("uint16")

    def odc_cube(items):
        from odc.stac import load as odc_load

        return odc_load(
            items,
            bands=[*BANDS, "scl"],
            geobox=window.geobox,
            resampling="nearest",
            chunks={"x": 2048, "y": 2048},
            groupby="id",
            fail_on_error=False,
        )

    def median_odc(items=items):
        import xarray as xr

        ds = odc_cube(items)
        times = ds.time.values.astype("datetime64[ms]")
        when = [np.datetime64(it.datetime.replace(tzinfo=None), "ms") for it in items]
        offs = np.zeros(len(times), "int32")
        for w, o in zip(when, _offsets(items), strict=True):
            offs[int(np.argmin(np.abs(times - w).astype("int64")))] = o
        off = xr.DataArray(offs, dims="time")
        refl = ds[list(BANDS)].to_dataarray("band")
        refl = xr.where(refl > 0, (refl.astype("int32") - off).clip(min=1), 0)
        clear = ds["scl"].isin(list(CLEAR_SCL))
        med = refl.where(clear & (refl > 0)).median("time").compute()
        return np.nan_to_num(med.values).astype("uint16")

    def odc(items=items):
        ds = odc_cube(items)
        # odc sorts by time: put the scenes back into the priority order (match by time)
        times = ds.time.values.astype("datetime64[ms]")
        when = [np.datetime64(it.datetime.replace(tzinfo=None), "ms") for it in items]
        which = [int(np.argmin(np.abs(times - w).astype("int64"))) for w in when]
        ds = ds.isel(time=which).compute()
        vals = np.stack([ds[b].values for b in BANDS], axis=1)
        off = _offsets(items)
        if off.any():
            vals = remove_boa_offset(vals, off.reshape(-1, 1, 1, 1))
        valid = np.isin(ds["scl"].values, CLEAR_SCL) & (vals > 0).all(axis=1)
        return _first_valid(vals, valid)

    def stackstac_mosaic(items=items):
        import stackstac

        arr = stackstac.stack(
            items,
            assets=[*BANDS, "scl"],
            epsg=4326,
            resolution=float(window.resolution),
            bounds=request_bounds(window),
            snap_bounds=False,
            rescale=False,
            fill_value=np.uint16(0),
            dtype="uint16",
            xy_coords="center",
            sortby_date=False,
            chunksize=2048,
        )
        import xarray as xr

        offs = xr.DataArray(_offsets(items), dims="time")
        refl = arr.sel(band=list(BANDS))
        refl = xr.where(refl > 0, (refl.astype("int32") - offs).clip(min=1), 0)
        clear = arr.sel(band="scl").isin(list(CLEAR_SCL)) & (arr.sel(band=list(BANDS)) > 0)
        # reverse=True: the first item (highest priority) on top
        out = stackstac.mosaic(refl.where(clear), dim="time", reverse=True).compute()
        return np.nan_to_num(out.values).astype("uint16")

    def first_utm(items=items):
        import rasterio

        # as every other system: no directory listing per open (sidecar probes over HTTP)
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
            return _first_on_utm_tiles(items)

    return {
        "production": production,
        "production-bare": production_bare,
        "priority": priority,
        "median": median,
        "odc-stac": odc,
        "stackstac.mosaic": stackstac_mosaic,
        "first-utm": first_utm,
        "median-odc": median_odc,
    }


def _first_on_utm_tiles(items) -> np.ndarray:
    """s2mosaic's ``first`` loop, per MGRS tile on its own grid (returns the tiles stacked)."""
    import rasterio
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom

    from s2cube.cube import remove_boa_offset

    tiles: dict[str, list] = {}
    for it in items:
        tiles.setdefault(str(it.properties.get("s2cube:mgrs_tile", "")), []).append(it)
    outs = []
    for scenes in tiles.values():
        with rasterio.open(scenes[0].assets[BANDS[0]].href) as ref:
            shape, transform, crs = ref.shape, ref.transform, ref.crs
        cover = np.zeros(shape, bool)
        for it in scenes:
            if it.geometry is not None:
                geom = transform_geom("EPSG:4326", crs, it.geometry)
                cover |= rasterize([geom], out_shape=shape, transform=transform).astype(bool)
        mosaic = np.zeros((len(BANDS), *shape), "uint16")
        filled = np.zeros(shape, bool)
        for it in scenes:
            with rasterio.open(it.assets["scl"].href) as src:
                scl = src.read(1, out_shape=shape, resampling=rasterio.enums.Resampling.nearest)
            take = np.isin(scl, CLEAR_SCL) & ~filled
            if not take.any():
                continue
            for b, band in enumerate(BANDS):
                with rasterio.open(it.assets[band].href) as src:
                    data = src.read(1, out_shape=shape)
                off = int(it.properties.get("s2cube:boa_offset", 0))
                if off:
                    data = remove_boa_offset(data, off)
                mosaic[b][take] = data[take]
            filled |= take & (mosaic > 0).all(axis=0)
            if not (cover & ~filled).any():
                break  # the tile is full: s2mosaic stops reading here
        outs.append(mosaic.reshape(len(BANDS), -1))
    return np.concatenate(outs, axis=1)


# --------------------------------------------------------------------------- measuring
# --------------------------------------------------------------------------- bytes needed
def _tile_table(path: str) -> dict[tuple[int, int], tuple[int, int, np.ndarray]]:
    """Per image of a GeoTIFF (full resolution and each overview), by ``(height, width)``:
    its tile (or strip) shape and the byte count of every tile, ``(tiles_y, tiles_x)``."""
    import tifffile

    out: dict[tuple[int, int], tuple[int, int, np.ndarray]] = {}
    with tifffile.TiffFile(path) as tf:
        for page in tf.pages:
            h, w = int(page.imagelength), int(page.imagewidth)
            th, tw = (int(page.tilelength), int(page.tilewidth)) if page.is_tiled else (0, w)
            if not th:
                th = int(page.tags["RowsPerStrip"].value) if "RowsPerStrip" in page.tags else h
            counts = np.asarray(page.databytecounts, dtype="int64")
            ny, nx = -(-h // th), -(-w // tw)
            out.setdefault((h, w), (th, tw, counts[: ny * nx].reshape(ny, nx)))
    return out


class _ReadLog:
    """Every window rasterio reads from a file, by phase (monkeypatches ``DatasetReader.read``
    and s2cube's ``cache.read_window``, whose windows may be served from the shared tile
    cache without a read, for the duration; GDAL warped reads, which s2cube's gather path
    avoids, are counted)."""

    def __init__(self) -> None:
        self.phase = "plan"
        self.reads: list[tuple[str, str, int, int, Any]] = []
        self.warped = 0

    def __enter__(self) -> _ReadLog:
        import rasterio.io
        import rasterio.vrt
        from rasterio.windows import Window

        from s2cube.reader import cache

        log = self
        self._orig = rasterio.io.DatasetReader.read
        self._orig_vrt = rasterio.vrt.WarpedVRT.read
        self._orig_window = cache.read_window
        orig, orig_vrt, orig_window = self._orig, self._orig_vrt, self._orig_window

        def read_window(ds, band, r0, c0, h, w):
            # the tiles a read needs, served by GDAL or by the cache (the reads GDAL then
            # makes lie inside these tiles)
            log.reads.append((log.phase, ds.name, ds.height, ds.width, Window(c0, r0, w, h)))
            return orig_window(ds, band, r0, c0, h, w)

        def read(ds, *args, **kwargs):
            log.reads.append((log.phase, ds.name, ds.height, ds.width, kwargs.get("window")))
            return orig(ds, *args, **kwargs)

        def read_vrt(ds, *args, **kwargs):
            # index-map warps read in-memory rasters; only a warp of a file reads its bytes
            src = getattr(ds, "src_dataset", None)
            if src is not None and not str(src.name).startswith("/vsimem/"):
                log.warped += 1
            return orig_vrt(ds, *args, **kwargs)

        rasterio.io.DatasetReader.read = read  # type: ignore[method-assign]
        rasterio.vrt.WarpedVRT.read = read_vrt  # type: ignore[method-assign]
        cache.read_window = read_window
        return self

    def __exit__(self, *exc: Any) -> None:
        import rasterio.io
        import rasterio.vrt

        from s2cube.reader import cache

        rasterio.io.DatasetReader.read = self._orig  # type: ignore[method-assign]
        rasterio.vrt.WarpedVRT.read = self._orig_vrt  # type: ignore[method-assign]
        cache.read_window = self._orig_window

    def tile_bytes(self, phases: tuple[str, ...]) -> int:
        """Bytes of the distinct internal tiles under the windows read in ``phases``."""
        tables: dict[str, Any] = {}
        tiles: set[tuple[str, int, int, int, int]] = set()
        total = 0
        for phase, path, h, w, win in self.reads:
            if phase not in phases:
                continue
            table = tables.setdefault(path, _tile_table(path))
            th, tw, counts = table[(h, w)]
            if win is None:
                r0, c0, r1, c1 = 0, 0, h, w
            else:
                r0, c0 = max(int(win.row_off), 0), max(int(win.col_off), 0)
                r1, c1 = min(int(win.row_off + win.height), h), min(int(win.col_off + win.width), w)
            for ty in range(r0 // th, -(-r1 // th)):
                for tx in range(c0 // tw, -(-c1 // tw)):
                    key = (path, h, w, ty, tx)
                    if key not in tiles:
                        tiles.add(key)
                        total += int(counts[ty, tx])
        return total


def read_accounting(items, grid, cell) -> dict[str, float]:
    """What the production path reads, in MiB of the files' own (compressed) tiles: under the
    survey's and fits' looks (``plan``), under the planned block reads (``blocks``: what the
    composite needs), and the union; plus the number of GDAL warped reads (0 on the gather
    path)."""
    import s2cube
    from s2cube.reader import gather

    gather.clear_cache()
    with _ReadLog() as log:
        lazy = s2cube.composite_cell(items, cell, grid=grid, config=s2cube.MosaicConfig())
        log.phase = "blocks"
        lazy.compute()
    mib = 2**20
    return {
        "plan": log.tile_bytes(("plan",)) / mib,
        "blocks": log.tile_bytes(("blocks",)) / mib,
        "all": log.tile_bytes(("plan", "blocks")) / mib,
        "warped_reads": float(log.warped),
        "reads": float(len(log.reads)),
    }


def _measure(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Best wall time of ``repeat`` untraced runs, then a traced run for peak memory."""
    from s2cube.reader import gather

    best = float("inf")
    out = None
    for _ in range(repeat):
        gather.clear_cache()  # no mapping carried from one run to the next
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    gather.clear_cache()
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak / 2**20, out


def run_case(
    name: str, items, grid, cell, repeat: int, systems: tuple[str, ...] = SYSTEMS
) -> dict[str, dict[str, float]]:
    """Time, memory, bytes and agreement of every system on one case; prints a table."""
    from s2cube.config import MosaicConfig
    from s2cube.planner import candidates_for
    from s2cube.reader import gather

    # every system gets the cell's candidates in s2cube's priority order
    items = candidates_for(items, cell, grid=grid, config=MosaicConfig().for_grid(grid))
    fns = make_systems(items, grid, cell)
    server = _bench_composite()._RangeServer()
    res: dict[str, dict[str, float]] = {}
    outs: dict[str, np.ndarray] = {}
    with dask.config.set(scheduler="threads"):
        for key in systems:
            fn = fns[key]
            fn()  # warm imports and GDAL's header caches, untimed
            splits = getattr(fn, "splits", None)
            if splits is not None:
                splits.clear()
            t, m, out = _measure(fn, repeat)
            gather.clear_cache()
            b0, r0 = server.bytes, len(server.ranges)
            fn(server.items(items, f"{name.split()[0]}-{key}-{time.time_ns()}"))
            res[key] = {"t": t, "m": m, "b": (server.bytes - b0) / 2**20, "px": out[0].size}
            # GDAL's first read of each file (its header and whatever else the first request
            # ingests): the price of opening it, whatever is read from it after
            heads = [n for _, start, n in server.ranges[r0:] if start == 0]
            res[key]["headers"] = sum(heads) / 2**20
            res[key]["files"] = float(len(heads))
            outs[key] = out
            if splits:
                # the fastest of the timed runs: where its time went
                res[key]["plan"], res[key]["compute"] = min(splits[:repeat], key=sum)
    server.close()
    ref = outs.get("priority")
    base = res.get("production", {}).get("t", float("nan"))
    print(f"\n[{name}] {len(items)} scenes, best of {repeat}")
    print(
        f"  {'system':17s} {'time s':>8s} {'×prod':>6s} {'peak MiB':>9s} {'read MiB':>9s} "
        f"{'Mpix/s':>7s} {'= priority':>10s}"
    )
    for key, r in res.items():
        out = outs[key]
        eq = float("nan")
        if ref is not None and out.shape == ref.shape:
            both = (out > 0).all(axis=0) & (ref > 0).all(axis=0)
            eq = float(((out == ref).all(axis=0) & both).sum() / max(both.sum(), 1))
            r["eq"] = eq
        print(
            f"  {key:17s} {r['t']:8.2f} {r['t'] / base:6.2f} {r['m']:9.1f} {r['b']:9.1f} "
            f"{r['px'] / r['t'] / 1e6:7.2f} {eq:10.3f}"
        )
    # peers on the same output grid; first-utm writes other (UTM) grids: compared per pixel
    peers = [k for k in res if k not in (*OWN, "first-utm")]
    if "production" in res and peers:
        fastest = min(peers, key=lambda k: res[k]["t"])
        print(
            f"  fastest peer on the grid: {fastest} ({res[fastest]['t']:.2f} s); production is "
            f"×{res[fastest]['t'] / base:.2f} faster"
            + "".join(
                f", ×{res[m]['t'] / base:.2f} vs {m}" for m in ("median", "median-odc") if m in res
            )
        )
    for key in OWN:
        if "plan" in res.get(key, {}):
            r = res[key]
            print(
                f"  {key}: plan (candidates, survey, fits, graph) {r['plan']:.2f} s + compute "
                f"(planned reads, masks, kernels) {r['compute']:.2f} s"
            )
    if "production-bare" in res and "median" in res:
        import s2cube

        # the median's reads alone (the cube it takes the median of), one cold run
        gather.clear_cache()
        gc.collect()
        t0 = time.perf_counter()
        with dask.config.set(scheduler="threads"):
            s2cube.load(items, cell, grid=grid).data.compute()
        res["median"]["reads"] = reads = time.perf_counter() - t0
        print(
            f"  median: its reads alone (s2cube.load of all {len(items)} scenes, computed) "
            f"{reads:.2f} s; the median run takes {res['median']['t'] - reads:.2f} s beyond them"
        )
        bare_t = res["production-bare"]["t"]
        print(
            f"  production-bare {bare_t:.2f} s: median ÷ bare ×{res['median']['t'] / bare_t:.2f} "
            f"(median ÷ production if harmonization, haze and feathering cost nothing); those "
            f"quality features make production ×{base / bare_t:.2f} the bare planned composite"
        )
    if "production" in res:
        acc = read_accounting(items, grid, cell)
        prod = res["production"]
        fetched, heads = prod["b"], prod["headers"]
        prod.update({f"tiles_{k}": v for k, v in acc.items()})
        print(
            f"  production reads: tiles under the planned blocks {acc['blocks']:.1f} MiB, under "
            f"the plan's looks {acc['plan']:.1f} MiB (union {acc['all']:.1f}); fetched "
            f"{fetched:.1f} MiB, of which first reads of {int(prod['files'])} files "
            f"{heads:.1f} MiB; fetched = ×{fetched / max(acc['blocks'], 1e-9):.2f} the blocks' "
            f"tiles, ×{fetched / max(acc['blocks'] + heads, 1e-9):.2f} (blocks' tiles + first "
            f"reads), ×{fetched / max(acc['all'], 1e-9):.2f} the union; "
            f"{int(acc['warped_reads'])} GDAL warped reads"
        )
    if "production" in res and "first-utm" in res:
        mine = res["production"]["px"] / base
        theirs = res["first-utm"]["px"] / res["first-utm"]["t"]
        print(f"  first-utm output px/s ÷ production's: ×{theirs / mine:.2f}")
    return res


def _synthetic(root: Path, n_dates: int, cloud_scale: float, quick: bool):
    from s2cube.testing import make_sample_catalog

    size, pixel = (300, 60.0) if quick else (1200, 10.0)
    return make_sample_catalog(
        root / f"n{n_dates}-c{cloud_scale}",
        seed=1,
        n_dates=n_dates,
        size=size,
        pixel_size=pixel,
        cloud_scale=cloud_scale,
    )


def main(argv: list[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    import s2cube
    from s2cube.grid import GlobalGrid

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (used by the test suite)")
    ap.add_argument("--repeat", type=int, default=None)
    ap.add_argument("--sizes", default=None, help="synthetic scene counts, e.g. 8,16,32,64")
    ap.add_argument("--clouds", default="0.5,1.5", help="cloud_scale levels of the synthetic")
    ap.add_argument("--no-real", action="store_true")
    ap.add_argument("--cache", default=None, help="directory to keep synthetic catalogs in")
    ap.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"comma-separated, of {', '.join(SYSTEMS + EXTRA_SYSTEMS)}",
    )
    args = ap.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    systems = tuple(s for s in args.systems.split(",") if s)
    unknown = [s for s in systems if s not in SYSTEMS + EXTRA_SYSTEMS]
    if unknown:
        ap.error(f"--systems: unknown {unknown}; choose from {list(SYSTEMS + EXTRA_SYSTEMS)}")
    results: dict[str, dict[str, dict[str, float]]] = {}
    if REAL.exists() and not args.no_real:
        res = Fraction(1, 400) if args.quick else Fraction(1, 1000)
        grid = GlobalGrid(resolution=res, cell_size=Fraction(1, 2))
        items = s2cube.search(REAL)
        results["real"] = run_case(
            "real 33TWL/33TWM", items, grid, grid.cell_of(15.9, 46.1), repeat, systems
        )
    sizes_arg = args.sizes if args.sizes is not None else ("8" if args.quick else "8,16,32,64")
    sizes = [int(s) for s in sizes_arg.split(",") if s]  # --sizes "": the real fixture only
    clouds = [float(c) for c in args.clouds.split(",")][: 1 if args.quick else None]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.cache) if args.cache else Path(tmp)
        for n in sizes:
            for cs in clouds:
                cat = _synthetic(root, n // 2, cs, args.quick)
                items = s2cube.search(cat)
                res = Fraction(1, 2000) if args.quick else Fraction(1, 12000)
                grid = GlobalGrid(resolution=res, cell_size=Fraction(1, 10))
                results[f"synthetic-{n}-c{cs}"] = run_case(
                    f"synthetic {n} scenes, cloud ×{cs}",
                    items,
                    grid,
                    grid.cell_of(12.0, 46.05),
                    repeat,
                    systems,
                )
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
