"""Planning: which scenes each cell and each processing block must read.

Before anything is read at full resolution, every candidate scene of a cell gets a *coarse
look* (its SCL at its own resolution, read with overviews disabled because SCL overviews
average class numbers into invented classes; blue/red/green/nir from overviews, which is fine
for statistics).  From the looks:

0. The SCL is read as stored (no warp) and reduced to coarse pixels that are clear only where
   every grid pixel is surely clear in the composite's mask (:func:`native_codes`: the source
   pixels a coarse pixel's grid pixels can sample, and the clouds their dilation can reach):
   the plan is conservative by construction.
1. **Haze score** per scene: the Haze Optimized Transform (Zhang, Guindon & Cihlar 2002,
   *Remote Sensing of Environment* 82:173) ``HOT = blue − 0.5·red − 0.08`` (reflectance), median
   over the scene's clear pixels.  Clear land sits near or below 0; haze raises blue over red and
   pushes HOT up.  Scenes with a score above ``haze_threshold`` are demoted to the end of the
   priority order (the decision is per scene, not per cell, so cells agree).
2. **Harmonization samples**: pairs (scene DN, reference DN) on clear pixels, the reference being
   the coarse per-pixel median of all clear observations (or the best scene, or a store).
3. **Block plans**: per processing block (with its blending halo), the shortest *priority
   prefix* of candidates after which every coarse pixel with data has a clear observation (or
   all candidates are used).  Only these scenes are read for the block.  Because the list is a
   prefix of the priority order, any pixel that finds a clear observation in it gets the same
   observation as a composite of *all* candidates; pixels that do not (a cloud edge finer than
   the coarse look) trigger a fallback read of the remaining candidates inside the block's task
   (see :mod:`s2cube.composite.engine`), so the planned composite equals the full one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pystac

from .grid import Cell, GlobalGrid, Window
from .harmonize.haze import haze_optimized_transform, haze_score
from .mask import CLEAR, CLOUD, NODATA, SHADOW, dilate_mask, scl_to_mask

if TYPE_CHECKING:
    from .reader import ReadPolicy

__all__ = [
    "CoarseLook",
    "BlockPlan",
    "CellPlan",
    "ColourSample",
    "Survey",
    "coarse_window",
    "read_coarse_look",
    "haze_optimized_transform",
    "survey_cell",
    "plan_blocks",
]

#: the band looks (haze score, harmonization samples) are this many times coarser than the SCL look
BAND_LOOK_FACTOR = 4
#: coarse code for "has data but may not be clear at full resolution" (a cloud code, so not clear)
UNCERTAIN = CLOUD
LOOK_BANDS = ("blue", "green", "red", "nir")


@dataclass
class CoarseLook:
    """Coarse arrays of one scene over one window (``codes`` uint8, ``bands`` uint16 (4, h, w))."""

    scene: str
    codes: np.ndarray
    bands: np.ndarray
    #: ``(href, error)`` when an asset of the scene could not be read: the planner drops the
    #: scene for this cell (the arrays are then empty)
    failure: tuple[str, str] | None = None


@dataclass(frozen=True, eq=False)
class ColourSample:
    """Codes and bands of every candidate at a fixed sample of pixels clear in at least two."""

    ids: tuple[str, ...]
    codes: np.ndarray  # (scene, pixel) uint8
    bands: np.ndarray  # (scene, 4, pixel) uint16 (LOOK_BANDS)


@dataclass(frozen=True, eq=False)
class Survey:
    """What the coarse looks of one cell's candidates tell the driver.

    ``codes`` ``(candidate, h, w)`` are the conservative coarse codes (survey order);
    ``haze[id]`` the HOT samples of a scene's clear pixels; ``pairs[id]`` ``(2, 4, k)`` the
    scene's DN (``[0]``) and the reference's (``[1]``) on pixels clear in both.
    """

    codes: np.ndarray
    haze: dict[str, np.ndarray]
    pairs: dict[str, np.ndarray]
    sample: ColourSample


@dataclass(frozen=True)
class BlockPlan:
    """Scenes to read for one processing block; indices into the cell's candidate list."""

    row: int
    col: int
    scenes: tuple[int, ...]
    candidates_with_data: tuple[int, ...]


@dataclass
class CellPlan:
    """The plan of one cell: candidates in final priority order and per-block scene lists."""

    cell: Cell
    candidates: list[str]
    block: int
    blocks: list[BlockPlan] = field(default_factory=list)
    coarse_factor: int = 1
    #: per candidate, coarse "has data" (dilated by one coarse pixel) over the halo'd cell window
    has_data: np.ndarray | None = None

    @property
    def read_fraction(self) -> float:
        """Scene-blocks planned / scene-blocks with data (1.0 = everything is read)."""
        planned = sum(len(b.scenes) for b in self.blocks)
        possible = sum(len(b.candidates_with_data) for b in self.blocks)
        return planned / possible if possible else 1.0

    def scenes_used(self) -> list[str]:
        used = sorted({s for b in self.blocks for s in b.scenes})
        return [self.candidates[i] for i in used]


# --------------------------------------------------------------------------- kernels
def prefix_lengths(codes: np.ndarray) -> np.ndarray:
    """Per coarse pixel: how many candidates (a priority prefix) it needs.

    ``codes`` is ``(candidate, y, x)`` in priority order.  A pixel needs candidates up to its
    first clear one; a pixel with none needs up to its last candidate with data; 0 if no data.
    """
    n = codes.shape[0]
    if n == 0:
        return np.zeros(codes.shape[1:], dtype="int32")
    clear = codes == CLEAR
    data = codes != NODATA
    first_clear = np.where(clear.any(0), np.argmax(clear, axis=0) + 1, 0)
    last_data = np.where(data.any(0), n - np.argmax(data[::-1], axis=0), 0)
    return np.where(first_clear > 0, first_clear, last_data).astype("int32")


# --------------------------------------------------------------------------- I/O
def coarse_window(grid: GlobalGrid, cell: Cell, halo: int, factor: int) -> Window:
    """The coarse look's window: the cell + halo (rounded up to whole coarse pixels), zoomed
    out by ``factor``."""
    return grid.cell_window(cell).pad(math.ceil(halo / factor) * factor).zoom_out(factor)


def reduce_codes(codes: np.ndarray, factor: int) -> np.ndarray:
    """Grid-resolution codes ``(y, x)`` → coarse codes: CLEAR only if *every* pixel is clear,
    NODATA only if every pixel is nodata, otherwise "data, not clear" (:data:`UNCERTAIN`).

    This makes the plan conservative: a coarse pixel the plan counts as clear is clear at full
    resolution, so the planned prefix leaves no hole the full composite would fill.
    """
    h, w = codes.shape[0] // factor, codes.shape[1] // factor
    blocks = codes[: h * factor, : w * factor].reshape(h, factor, w, factor)
    all_clear = (blocks == CLEAR).all(axis=(1, 3))
    all_nodata = (blocks == NODATA).all(axis=(1, 3))
    out = np.full((h, w), UNCERTAIN, dtype="uint8")
    out[all_clear] = CLEAR
    out[all_nodata] = NODATA
    return out


#: survey SCL at the source's own resolution (:func:`native_codes`); False: warped to the grid
NATIVE_SURVEY = True
#: source-pixel slack around a coarse pixel's corners: GDAL's nearest warp picks the pixel under
#: an output pixel's centre through an approximate transformer that errs by < 0.125 px
NATIVE_SLACK = 0.5


def lattice_pixel(rows: np.ndarray, cols: np.ndarray, factor: int) -> float:
    """The largest grid pixel side, in source pixels, from a coarse lattice's edges."""
    with np.errstate(invalid="ignore"):
        edge_x = np.hypot(np.diff(rows, axis=1), np.diff(cols, axis=1))
        edge_y = np.hypot(np.diff(rows, axis=0), np.diff(cols, axis=0))
    finite = np.concatenate([edge_x[np.isfinite(edge_x)], edge_y[np.isfinite(edge_y)]])
    return float(finite.max()) / factor if finite.size else 0.0


def native_margin(rows: np.ndarray, cols: np.ndarray, factor: int, dilation: int) -> int:
    """Source pixels a native read needs around a coarse lattice (see :func:`native_codes`)."""
    return math.ceil(dilation * lattice_pixel(rows, cols, factor) + NATIVE_SLACK) + 1


def _summed(mask: np.ndarray) -> np.ndarray:
    """Summed-area table of a boolean image, with a zero first row and column."""
    try:
        import cv2
    except ImportError:  # pragma: no cover - OpenCV is a core dependency
        table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), "int64")
        np.cumsum(np.cumsum(mask, axis=0, dtype="int64"), axis=1, out=table[1:, 1:])
        return table
    return np.asarray(cv2.integral(np.ascontiguousarray(mask).view("uint8")))  # ×10 numpy's


def native_codes(
    scl: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    factor: int,
    cloud_dilation: int = 0,
    shadow_dilation: int = 0,
    table: np.ndarray | None = None,
) -> np.ndarray:
    """Conservative coarse codes from SCL at its *own* resolution (no warp).

    ``scl`` is a source window; ``rows``/``cols`` ``(h + 1, w + 1)`` the coarse pixels'
    corners in its pixel coordinates (:func:`s2cube.reader.read_native`), each coarse pixel
    ``factor`` × ``factor`` grid pixels.

    The composite samples SCL by nearest on the grid (the source pixel under each grid pixel's
    centre, through GDAL's approximate transformer: within :data:`NATIVE_SLACK`) and grows
    clouds and shadows by a disk of ``cloud_dilation`` / ``shadow_dilation`` grid pixels.  So a
    grid pixel of coarse pixel *C* is clear unless a source pixel in *C*'s box (the bounding box
    of its corners, widened by the slack) is not clear, or a cloud (shadow) source pixel lies in
    that box widened further by ``cloud_dilation`` (``shadow_dilation``) × the largest grid
    pixel side in source pixels.  A coarse pixel is CLEAR only if neither holds, NODATA only if
    its box is all nodata, otherwise :data:`UNCERTAIN`: every grid pixel of a CLEAR coarse pixel
    is clear in the composite's mask, which is what the plan needs (:func:`reduce_codes` is the
    grid-resolution version).  The boxes are counted on summed-area tables (O(1) per coarse
    pixel); no source pixel is dilated.
    """
    h, w = rows.shape[0] - 1, rows.shape[1] - 1
    out = np.full((max(h, 0), max(w, 0)), UNCERTAIN, dtype="uint8")
    if h <= 0 or w <= 0:
        return out
    if scl.size == 0:
        out[:] = NODATA  # nothing of the source under the window
        return out
    codes = scl_to_mask(scl) if table is None else scl_to_mask(scl, table)
    grid_px = lattice_pixel(rows, cols, factor)

    def corners(a: np.ndarray, fn: Any) -> np.ndarray:
        return fn(fn(a[:-1, :-1], a[:-1, 1:]), fn(a[1:, :-1], a[1:, 1:]))

    with np.errstate(invalid="ignore"):
        lo_r, hi_r = corners(rows, np.fmin), corners(rows, np.fmax)
        lo_c, hi_c = corners(cols, np.fmin), corners(cols, np.fmax)
    known = np.isfinite(lo_r) & np.isfinite(hi_r) & np.isfinite(lo_c) & np.isfinite(hi_c)

    def box(grow: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Index bounds of every coarse pixel's box widened by ``grow`` source pixels, and
        whether the box lies inside ``scl``."""
        pad = grow + NATIVE_SLACK
        with np.errstate(invalid="ignore"):
            bounds = [
                np.floor(lo_r - pad),
                np.floor(hi_r + pad) + 1,
                np.floor(lo_c - pad),
                np.floor(hi_c + pad) + 1,
            ]
            ok = (
                known
                & (bounds[0] >= 0)
                & (bounds[2] >= 0)
                & (bounds[1] <= scl.shape[0])
                & (bounds[3] <= scl.shape[1])
            )
        a, b, c, d = (np.where(ok, v, 0).astype("int64") for v in bounds)
        return a, b, c, d, ok

    def count(mask: np.ndarray, bounds: tuple[np.ndarray, ...]) -> np.ndarray:
        t = _summed(mask)
        a, b, c, d = bounds[:4]
        return t[b, d] - t[a, d] - t[b, c] + t[a, c]

    own = box(0.0)
    area = (own[1] - own[0]) * (own[3] - own[2])
    # a box off the read window (not expected: the read has a margin) stays UNCERTAIN
    all_clear = own[4] & (count(codes == CLEAR, own) == area)
    # cloud and shadow grown by the same distance share one box and one table
    grow: dict[int, list[int]] = {}
    for code, dilation in ((CLOUD, cloud_dilation), (SHADOW, shadow_dilation)):
        grow.setdefault(max(dilation, 0), []).append(code)
    for dilation, which in grow.items():
        grown = box(dilation * grid_px) if dilation > 0 else own
        hit = codes == which[0]
        for code in which[1:]:
            hit |= codes == code
        all_clear &= grown[4] & (count(hit, grown) == 0)
    all_nodata = own[4] & (count(codes == NODATA, own) == area)
    out[all_clear] = CLEAR
    out[all_nodata] = NODATA
    return out


def read_coarse_look(
    item: pystac.Item,
    window: Window,
    *,
    factor: int = 1,
    cloud_dilation: int = 0,
    shadow_dilation: int = 0,
    bands: Sequence[str] | None = LOOK_BANDS,
    strict: bool = False,
    policy: ReadPolicy | None = None,
    native: bool | None = None,
) -> CoarseLook:
    """Read one scene's coarse look onto a coarse ``window`` (see :func:`coarse_window`).

    SCL is read at its own resolution, without warping and with overviews disabled
    (``OVERVIEW_LEVEL=NONE``: SCL overviews average classes into invented ones), masked, and
    reduced to the coarse shape conservatively by :func:`native_codes` (each coarse pixel's box
    of source pixels, widened by the composite's dilation for clouds and shadows). With
    ``native=False`` it is read instead with nearest resampling at ``factor`` × the coarse
    resolution (the grid's own resolution when ``factor`` is the plan factor), masked and
    dilated exactly as the composite does, then reduced with :func:`reduce_codes` (the reference
    the native survey is tested against: both are conservative; the native one costs the
    source's pixels, not the grid's, and no warp). The reflectance bands are read at the coarse
    shape directly and may come from overviews (they only feed statistics). The BOA offset is
    removed as in :func:`s2cube.load`. The reads go through :func:`s2cube.reader.read_warped`: a
    transient failure gives a nodata look and a ``ReadFailureWarning`` (an error with
    ``strict=True``); with a dropping ``policy`` every failure raises
    :class:`~s2cube.errors.SceneReadError`.
    """
    from .reader import lonlat_geobox, read_native, read_policy, read_warped

    policy = policy or read_policy(strict)

    bounds, shape = window.bounds, window.shape
    h, w = shape
    offset = int(item.properties.get("s2cube:boa_offset", 0))

    def read(href: str, overviews: bool, out_h: int, out_w: int) -> np.ndarray:
        # the look's own geometry (pixel size = span / count), not the grid's window
        target = lonlat_geobox(bounds, (out_h, out_w))
        # bands may come from an overview (statistics only); SCL never: its overviews invent
        # classes
        overview = "auto" if overviews else None
        return read_warped(href, target, overview=overview, policy=policy)

    arrays = []
    for band in bands or ():
        if band in item.assets:
            # statistics need far fewer pixels than the plan: read 4× coarser, repeat back
            bh, bw = max(1, -(-h // BAND_LOOK_FACTOR)), max(1, -(-w // BAND_LOOK_FACTOR))
            small = read(item.assets[band].href, True, bh, bw).astype("uint16")
            dn = np.repeat(np.repeat(small, -(-h // bh), axis=0), -(-w // bw), axis=1)[:h, :w]
            if offset:
                dn = np.where(dn == 0, 0, np.maximum(dn.astype("int32") - offset, 1)).astype(
                    "uint16"
                )
            arrays.append(dn)
        else:
            arrays.append(np.zeros(shape, "uint16"))
    stack = np.stack(arrays) if arrays else np.ones((len(LOOK_BANDS), *shape), "uint16")
    href = item.assets["scl"].href
    if NATIVE_SURVEY if native is None else native:

        def margin(rows: np.ndarray, cols: np.ndarray) -> int:
            return native_margin(rows, cols, factor, max(cloud_dilation, shadow_dilation))

        got = read_native(href, bounds, shape, margin=margin, policy=policy)
        scl = got.data if got.data is not None else np.zeros((0, 0), "uint8")
        codes = native_codes(
            scl,
            got.rows,
            got.cols,
            factor=factor,
            cloud_dilation=cloud_dilation,
            shadow_dilation=shadow_dilation,
        )
    else:
        scl = read(href, False, h * factor, w * factor)
        fine = scl_to_mask(scl)
        fine = dilate_mask(fine[None], cloud=cloud_dilation, shadow=shadow_dilation)[0]
        codes = reduce_codes(fine, factor)
    codes[(stack == 0).all(axis=0) & (codes != NODATA)] = UNCERTAIN
    return CoarseLook(scene=item.id, codes=codes, bands=stack)


# --------------------------------------------------------------------------- survey
def _sample_positions(rng: random.Random, n: int, k: int) -> np.ndarray:
    """Sorted positions of ``rng.sample`` of ``k`` out of ``n`` (``n`` > ``k``).

    ``random.sample`` draws the same positions whatever the population holds, so taking these
    positions from an increasing index array gives ``sorted(rng.sample(list(array), k))``
    exactly, without turning the array into a list of Python ints."""
    return np.sort(np.fromiter(rng.sample(range(n), k), dtype=np.intp, count=k))


def survey_cell(
    items: Sequence[pystac.Item],
    cell: Cell,
    *,
    grid: GlobalGrid,
    halo: int,
    factor: int,
    cloud_dilation: int = 0,
    shadow_dilation: int = 0,
    reference: np.ndarray | None = None,
    reference_scene: str | None = None,
    n_samples: int = 2000,
    seed: int = 0,
    with_bands: bool = True,
    looks: Sequence[CoarseLook] | None = None,
    surveyed: Collection[str] | None = None,
) -> Survey:
    """Coarse looks of a cell's candidates and the samples the driver needs.

    ``looks`` (one per item, from :func:`read_coarse_look` over :func:`coarse_window`) may be
    given when they were read elsewhere, e.g. in parallel tasks.  ``surveyed`` names the items
    whose look was read; the others carry a :func:`footprint_look` (survey stopped early) and get
    no haze or harmonization samples (so no fitted parameters).

    Returns a :class:`Survey` (its ``sample``: codes and bands of every scene at up to
    ``n_samples`` pixels clear in at least two scenes).  The harmonization reference is the
    coarse median of clear observations, the ``reference_scene``, or ``reference``
    ``(4, h, w)`` when given.
    """
    from .harmonize.radiometry import reference_composite

    window = coarse_window(grid, cell, halo, factor)
    shape = window.shape
    if looks is None:
        looks = [
            read_coarse_look(
                it,
                window,
                factor=factor,
                cloud_dilation=cloud_dilation,
                shadow_dilation=shadow_dilation,
                bands=LOOK_BANDS if with_bands else None,
            )
            for it in items
        ]
    codes = np.stack([lk.codes for lk in looks]) if looks else np.zeros((0, *shape), "uint8")
    bands = np.stack([lk.bands for lk in looks]) if looks else np.zeros((0, 4, *shape), "uint16")
    clear = codes == CLEAR
    ids = [it.id for it in items]
    if reference is not None:
        ref = reference.astype("float64")
    elif reference_scene is not None and reference_scene in ids:
        k = ids.index(reference_scene)
        ref = np.where(clear[k][None] & (bands[k] > 0), bands[k].astype("float64"), np.nan)
    else:
        # looks never clear anywhere (footprint looks of unsurveyed scenes) add nothing to the
        # median: leave them out of its sort
        seen = clear.any(axis=(1, 2))
        ref = reference_composite(bands[seen], clear[seen])
    rng = random.Random(f"{seed}-{cell.name}")
    haze: dict[str, np.ndarray] = {}
    pairs: dict[str, np.ndarray] = {}
    for k, it in enumerate(items):
        if surveyed is not None and it.id not in surveyed:
            continue
        ok = clear[k] & (bands[k] > 0).all(axis=0)
        idx = np.flatnonzero(ok.ravel())
        if idx.size > n_samples:
            idx = idx[_sample_positions(rng, idx.size, n_samples)]
        b = bands[k].reshape(4, -1)[:, idx]
        haze[it.id] = haze_optimized_transform(b[0], b[2])
        r = ref.reshape(4, -1)[:, idx]
        good = np.isfinite(r).all(axis=0)
        pairs[it.id] = np.stack([b[:, good].astype("float64"), r[:, good]])
    # a fixed sample of pixel locations seen by every scene, for colour-consistency metrics
    flat = (
        np.flatnonzero((codes == CLEAR).sum(axis=0).ravel() >= 2)
        if len(codes)
        else np.array([], int)
    )
    if flat.size > n_samples:
        flat = flat[_sample_positions(rng, flat.size, n_samples)]
    sample = ColourSample(
        ids=tuple(ids),
        codes=codes.reshape(len(codes), -1)[:, flat],
        bands=bands.reshape(len(bands), 4, -1)[:, :, flat],
    )
    return Survey(codes=codes, haze=haze, pairs=pairs, sample=sample)


def footprint_mask(item: pystac.Item, window: Window, *, dilate: int = 2) -> np.ndarray:
    """Pixels of a (coarse) ``window`` where ``item`` may have data, from its metadata alone.

    The footprint geometry (else bbox) rasterized with ``all_touched`` and dilated by
    ``dilate`` pixels: a superset of the pixels a look would find data in.  No geometry: all.
    """
    from rasterio.features import rasterize
    from scipy.ndimage import binary_dilation
    from shapely.geometry import box, mapping

    geom = item.geometry
    if geom is None and item.bbox is not None:
        geom = mapping(box(*item.bbox[:2], *item.bbox[-2:]))
    if geom is None:
        return np.ones(window.shape, bool)
    mask = rasterize(
        [geom],
        out_shape=window.shape,
        transform=window.transform,
        all_touched=True,
        fill=0,
        default_value=1,
        dtype="uint8",
    ).astype(bool)
    if dilate and mask.any():
        mask = binary_dilation(mask, iterations=dilate)
    return mask


def footprint_masks(items: Sequence[pystac.Item], window: Window) -> list[np.ndarray]:
    """:func:`footprint_mask` of each item over ``window``, rasterized once per distinct
    footprint (the scenes of one MGRS tile and orbit mostly share theirs); the arrays of equal
    footprints are the same object, so treat them as read-only."""
    import json

    done: dict[str, np.ndarray] = {}
    out = []
    for it in items:
        key = json.dumps([it.geometry, None if it.geometry else it.bbox], sort_keys=True)
        if key not in done:
            done[key] = footprint_mask(it, window)
        out.append(done[key])
    return out


def footprint_look(
    item: pystac.Item, window: Window, *, mask: np.ndarray | None = None
) -> CoarseLook:
    """The look of a candidate the survey did not read: "data, not clear" (:data:`UNCERTAIN`)
    wherever :func:`footprint_mask` (or the given ``mask``, the same) says it may have data,
    nodata elsewhere, no band values.

    Planning with it is conservative: no block counts on the scene being clear, and every block
    it may cover lists it as a candidate (so the fallback and an unplanned run read it).
    """
    fp = footprint_mask(item, window) if mask is None else mask
    codes = np.where(fp, UNCERTAIN, NODATA).astype("uint8")
    return CoarseLook(item.id, codes, np.zeros((len(LOOK_BANDS), *window.shape), "uint16"))


def look_is_hazy(look: CoarseLook, threshold: float | None) -> bool:
    """Whether a look's own haze score (median HOT of its clear pixels) exceeds ``threshold``."""
    if threshold is None:
        return False
    ok = (look.codes == CLEAR) & (look.bands > 0).all(axis=0)
    b = look.bands[:, ok]
    score = haze_score([haze_optimized_transform(b[0], b[2])])
    return bool(score > threshold)


def survey_complete(
    looks: Sequence[CoarseLook], remaining: np.ndarray, *, haze_threshold: float | None
) -> bool:
    """Whether surveying more candidates can no longer shorten any block's plan.

    True when every pixel where an unsurveyed candidate may have data (``remaining``, from
    :func:`footprint_mask`) is clear in a surveyed look that is not hazy by its own score: the
    unsurveyed candidates come later in the priority order, so no planned prefix reaches them
    there.  (Scenes demoted as hazy by the pooled score only lengthen the plan; the plan stays
    exact either way, see :func:`footprint_look`.)
    """
    if not remaining.any():
        return True
    covered = np.zeros(remaining.shape, bool)
    for lk in looks:
        if not look_is_hazy(lk, haze_threshold):
            covered |= lk.codes == CLEAR
    return bool(covered[remaining].all())


def plan_blocks(
    codes: np.ndarray,
    *,
    grid: GlobalGrid,
    cell: Cell,
    candidates: Sequence[str],
    order: Sequence[int],
    block: int,
    halo: int,
    factor: int,
    plan: bool = True,
) -> CellPlan:
    """Per-block priority prefixes from the coarse codes of a cell's candidates.

    ``codes`` holds the candidates in survey order; ``order`` is the final priority order (after
    haze demotion) as indices into it.  ``halo`` is the block's context in pixels (blending).
    """
    ordered = codes[list(order)] if len(order) else codes[:0]
    n_px = grid.cell_pixels
    h_c = (codes.shape[1] - n_px // factor) // 2
    data = ordered != NODATA
    # dilate "has data" by one coarse pixel so footprint edges finer than the look are covered
    from scipy.ndimage import binary_dilation

    has_data = np.stack([binary_dilation(d, iterations=1) for d in data]) if len(data) else data
    need = prefix_lengths(ordered)
    cp = CellPlan(
        cell=cell,
        candidates=[candidates[i] for i in order],
        block=block,
        coarse_factor=factor,
        has_data=has_data,
    )
    n_blocks = math.ceil(n_px / block)
    for bi in range(n_blocks):
        for bj in range(n_blocks):
            y0, y1 = bi * block - halo, min((bi + 1) * block, n_px) + halo
            x0, x1 = bj * block - halo, min((bj + 1) * block, n_px) + halo
            cy0 = max(math.floor(y0 / factor) + h_c, 0)
            cy1 = min(math.ceil(y1 / factor) + h_c, codes.shape[1])
            cx0 = max(math.floor(x0 / factor) + h_c, 0)
            cx1 = min(math.ceil(x1 / factor) + h_c, codes.shape[2])
            win = has_data[:, cy0:cy1, cx0:cx1]
            with_data = tuple(int(k) for k in np.flatnonzero(win.reshape(len(win), -1).any(axis=1)))
            if plan:
                length = int(need[cy0:cy1, cx0:cx1].max(initial=0))
                scenes = tuple(k for k in with_data if k < length)
            else:
                scenes = with_data
            cp.blocks.append(BlockPlan(bi, bj, scenes, with_data))
    return cp


__all__ += [
    "prefix_lengths",
    "reduce_codes",
    "haze_score",
    "footprint_mask",
    "footprint_masks",
    "footprint_look",
    "look_is_hazy",
    "survey_complete",
]
