"""The physics of the synthetic sample scene: land surface, atmosphere and one item's pixels.

This module owns what the sample's pixels hold (numpy only, no I/O): the land surface as a
function of lon/lat (fields in parcels, forest, a lake, a river, a town, dark patches and a
snow patch on some dates) with realistic L2A reflectance DN, the per-date atmosphere (clouds,
their shadows displaced away from the sun, thin cirrus), the swath-edge wedge, and
:meth:`Scene.render`, which turns them into the DN and SCL of one item.  :func:`sample_truth`
evaluates the surface anywhere; see :mod:`s2cube.testing` for the whole catalog.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from pyproj import Transformer
from shapely.geometry import Polygon

from s2cube.testing.acquisitions import (
    DateSpec,
    Tile,
    check_params,
    date_spec,
    from_local,
    make_tiles,
    to_local,
)
from s2cube.testing.noise import (
    STREAM_DARK,
    STREAM_DATE,
    STREAM_EDGE,
    STREAM_FOREST,
    STREAM_FOREST2,
    STREAM_ITEM,
    STREAM_LAYOUT,
    STREAM_MEANDER,
    STREAM_TEX,
    STREAM_TEX2,
    NoiseField,
    hash01,
    hash_salt,
    stream_rng,
)

__all__ = ["BANDS", "REDEDGE_BANDS", "Scene", "cached_scene", "rededge_dn", "sample_truth"]

#: Reflectance assets written for every item (Earth Search asset keys), in this order.
BANDS: tuple[str, ...] = ("blue", "green", "red", "nir", "swir16", "swir22")

#: Red-edge assets written only with ``make_sample_catalog(rededge=True)`` (Dynamic World's
#: B5-B7), and where each lies between red (0) and nir (1), see :func:`rededge_dn`.
REDEDGE_BANDS: tuple[str, ...] = ("rededge1", "rededge2", "rededge3")
_REDEDGE_POSITION = (0.2, 0.7, 0.9)

_SWATH_SLANT_DEG = 12.0  # swath edge against the meridian (descending orbit heading ~SSW)
_WEDGE_FRACTION = 0.12  # width of the nodata wedge at the tile centre, as a fraction of the tile

# Surface materials: reflectance DN for blue, green, red, nir, swir16, swir22 and SCL class.
_MATERIALS: dict[str, tuple[tuple[float, ...], int]] = {
    "crop": ((300, 650, 350, 3800, 2100, 950), 4),
    "grass": ((380, 750, 520, 3000, 2300, 1200), 4),
    "bare_soil": ((900, 1250, 1650, 2300, 3100, 2600), 5),
    "harvested": ((700, 1000, 1250, 2500, 3300, 2400), 5),
    "forest": ((180, 380, 220, 2900, 1350, 550), 4),
    "water": ((450, 430, 260, 110, 60, 40), 6),
    "roof": ((1100, 1200, 1300, 1900, 2400, 2100), 5),
    "asphalt": ((650, 700, 750, 1100, 1500, 1350), 5),
    "dark": ((220, 260, 240, 450, 380, 250), 2),
    "snow": ((8500, 8300, 8000, 7300, 700, 450), 11),
}
_FIELD_CROPS = ("crop", "grass", "bare_soil", "harvested")
_FIELD_CROP_CUMPROB = np.array([0.40, 0.65, 0.80])  # crop 40 %, grass 25 %, bare 15 %, harv. 20 %
_TEX_AMP = (0.008, 0.04)  # within-field (smooth) and forest-canopy texture amplitudes
_TEX_SCALE = (10.0, 2.5)  # their scales in pixels (texture costs disk space)
_CLOUD_SPECTRUM = np.array([1.0, 0.98, 0.96, 0.97, 0.65, 0.45])
_CIRRUS_SPECTRUM = np.array([1.0, 0.95, 0.9, 0.8, 0.45, 0.3])


class Scene:
    """The static land surface and the per-date atmosphere, defined in lon/lat."""

    def __init__(self, seed: int, size: int, pixel_size: float, cloud_scale: float = 1.0) -> None:
        self.seed, self.size, self.pixel_size = seed, size, pixel_size
        self.cloud_scale = cloud_scale
        self.tiles = make_tiles(size, pixel_size)
        w = self.width = size * pixel_size
        es: list[float] = []
        ns: list[float] = []
        for tile in self.tiles:
            lon, lat = np.asarray(tile.footprint().exterior.coords).T
            e, n = to_local(lon, lat)
            es.extend(e)
            ns.extend(n)
        margin = 4000.0 + 0.05 * w
        self.domain = (min(es) - margin, max(es) + margin, min(ns) - margin, max(ns) + margin)
        fine = pixel_size / 2

        def noise(stream: int, scale: float) -> NoiseField:
            return NoiseField(stream_rng(seed, stream), self.domain, scale, fine)

        self.forest = noise(STREAM_FOREST, 0.12 * w)
        self.forest2 = noise(STREAM_FOREST2, 0.03 * w)
        self.edge = noise(STREAM_EDGE, max(3 * pixel_size, 0.012 * w))
        self.tex = noise(STREAM_TEX, _TEX_SCALE[0] * pixel_size)
        self.tex2 = noise(STREAM_TEX2, _TEX_SCALE[1] * pixel_size)
        self.dark = noise(STREAM_DARK, max(4 * pixel_size, 0.015 * w))
        self.meander = noise(STREAM_MEANDER, 0.08 * w)

        rng = stream_rng(seed, STREAM_LAYOUT)
        self.field_angle = float(rng.uniform(-0.5, 0.5))
        self.town_angle = float(rng.uniform(0.0, math.pi / 2))
        self.town_r = 0.08 * w
        self.lake_ab = (0.12 * w, 0.07 * w)
        self.lake_angle = float(rng.uniform(0.0, math.pi))
        while True:  # town and lake apart from each other
            town = rng.uniform([-0.4 * w, -0.2 * w], [0.4 * w, 0.2 * w])
            lake = rng.uniform([-0.5 * w, -0.2 * w], [0.5 * w, 0.2 * w])
            if math.dist(town, lake) > self.town_r + self.lake_ab[0] + 0.05 * w:
                break
        self.town_c = (float(town[0]), float(town[1]))
        self.lake_c = (float(lake[0]), float(lake[1]))
        self.river = (
            float(rng.uniform(-0.3, 0.3) * w),
            float(rng.uniform(0.04, 0.08) * w),
            float(rng.uniform(0.6, 1.0) * w),
            float(rng.uniform(0, 2 * math.pi)),
        )
        self.river_width = max(2.5 * pixel_size, 120.0)
        self.snow_c = (float(rng.uniform(-0.6, 0.6) * w), float(rng.uniform(0.15, 0.35) * w))
        self.snow_r = 0.035 * w
        self._date_cache: dict[int, tuple[DateSpec, dict[str, Any]]] = {}

    # ---------------------------------------------------------------------- surface
    def surface(
        self, e: np.ndarray, n: np.ndarray, snow: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """True surface reflectance DN (6, ...) float64 and surface SCL class (...) uint8."""
        shape = np.shape(e)
        refl = np.empty((6, *shape))
        scl = np.empty(shape, dtype=np.uint8)
        tex, tex2 = self.tex(e, n), self.tex2(e, n)
        w = self.width

        def put(mask: np.ndarray, material: str, variability: np.ndarray | float) -> None:
            values, cls = _MATERIALS[material]
            factor = np.broadcast_to(1.0 + np.asarray(variability), shape)[mask]
            for b in range(6):
                refl[b][mask] = values[b] * factor
            scl[mask] = cls

        # 1. agricultural parcels everywhere
        ca, sa = math.cos(self.field_angle), math.sin(self.field_angle)
        u, v = e * ca + n * sa, -e * sa + n * ca
        pu, pv = max(600.0, 6 * self.pixel_size), max(380.0, 4 * self.pixel_size)
        iu = np.floor(u / pu)
        jv = np.floor(v / pv + 0.37 * iu)
        h1 = hash01(iu, jv, hash_salt(self.seed, 1))
        h2 = hash01(iu, jv, hash_salt(self.seed, 2))
        crop = np.searchsorted(_FIELD_CROP_CUMPROB, h1, side="right")
        variability = (h2 - 0.5) * 0.3 + _TEX_AMP[0] * tex
        for k, name in enumerate(_FIELD_CROPS):
            put(crop == k, name, variability)
        # 2. a few dark patches (SCL 2)
        put(self.dark(e, n) > 2.3, "dark", 0.02 * tex)
        # 3. forest
        forest = (
            0.8 * self.forest(e, n) + 0.35 * self.forest2(e, n) + 0.15 * self.edge(e, n)
        ) > 0.55
        put(forest, "forest", _TEX_AMP[1] * tex2 + _TEX_AMP[0] * tex)
        # 4. town: blocks of roofs, asphalt and parks
        de, dn = e - self.town_c[0], n - self.town_c[1]
        town = np.hypot(de, dn) / self.town_r + 0.15 * self.edge(e, n) < 1.0
        ct, st = math.cos(self.town_angle), math.sin(self.town_angle)
        block = max(150.0, 2 * self.pixel_size)
        bi, bj = np.floor((de * ct + dn * st) / block), np.floor((-de * st + dn * ct) / block)
        hb = hash01(bi, bj, hash_salt(self.seed, 3))
        put(town & (hb < 0.6), "roof", 0.03 * tex)
        put(town & (hb >= 0.6) & (hb < 0.85), "asphalt", 0.03 * tex)
        put(town & (hb >= 0.85), "grass", 0.02 * tex)
        # 5. a river crossing the whole scene (and the zone boundary)
        n0, amp, wavelength, phase = self.river
        centre = (
            n0 + amp * np.sin(2 * math.pi * e / wavelength + phase) + 0.05 * w * self.meander(e, n)
        )
        put(np.abs(n - centre) < self.river_width / 2, "water", 0.02 * tex)
        # 6. a lake with a ragged shore
        dl_e, dl_n = e - self.lake_c[0], n - self.lake_c[1]
        cl, sl = math.cos(self.lake_angle), math.sin(self.lake_angle)
        a, b = self.lake_ab
        r = np.hypot((dl_e * cl + dl_n * sl) / a, (-dl_e * sl + dl_n * cl) / b)
        put(r + 0.2 * self.edge(e, n) < 1.0, "water", 0.02 * tex)
        # 7. snow patch (date dependent)
        if snow:
            patch = np.hypot(e - self.snow_c[0], n - self.snow_c[1]) / self.snow_r
            put(patch + 0.25 * self.edge(e, n) < 1.0, "snow", 0.01 * tex)
        np.maximum(refl, 1.0, out=refl)
        return refl, scl

    # ---------------------------------------------------------------------- atmosphere
    def date(self, i: int) -> DateSpec:
        """The acquisition plan of date ``i`` (its atmosphere fields are built and cached)."""
        return self._date_fields(i)[0]

    def _date_fields(self, i: int) -> tuple[DateSpec, dict[str, Any]]:
        if i not in self._date_cache:
            spec = date_spec(self.seed, i, self.cloud_scale)
            base = STREAM_DATE + 100 * i
            fields: dict[str, Any] = {}
            w = self.width
            # a regular sample of the domain to set the thresholds (same for every tile)
            ge, gn = np.meshgrid(
                np.linspace(self.domain[0], self.domain[1], 160),
                np.linspace(self.domain[2], self.domain[3], 160),
            )
            if spec.cloud_fraction > 0:
                c1 = NoiseField(
                    stream_rng(self.seed, base + 1), self.domain, 0.08 * w, self.pixel_size / 2
                )
                c2 = NoiseField(
                    stream_rng(self.seed, base + 2), self.domain, 0.025 * w, self.pixel_size / 2
                )
                c3 = NoiseField(
                    stream_rng(self.seed, base + 3),
                    self.domain,
                    max(10 * self.pixel_size, 0.04 * w),
                    self.pixel_size / 2,
                )

                def cloud_field(e: np.ndarray, n: np.ndarray) -> np.ndarray:
                    return 0.75 * c1(e, n) + 0.3 * c2(e, n) + 0.1 * c3(e, n)

                fields["cloud"] = cloud_field
                fields["cloud_tex"] = c3
                fields["cloud_t"] = float(
                    np.quantile(cloud_field(ge, gn), 1.0 - spec.cloud_fraction)
                )
            if spec.cirrus_fraction > 0:
                m1 = NoiseField(
                    stream_rng(self.seed, base + 4), self.domain, 0.15 * w, self.pixel_size / 2
                )
                m2 = NoiseField(
                    stream_rng(self.seed, base + 5), self.domain, 0.04 * w, self.pixel_size / 2
                )

                def cirrus_field(e: np.ndarray, n: np.ndarray) -> np.ndarray:
                    return 0.85 * m1(e, n) + 0.25 * m2(e, n)

                fields["cirrus"] = cirrus_field
                fields["cirrus_t"] = float(
                    np.quantile(cirrus_field(ge, gn), 1.0 - spec.cirrus_fraction)
                )
            self._date_cache[i] = (spec, fields)
        return self._date_cache[i]

    def atmosphere(
        self, i: int, e: np.ndarray, n: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Cloud density, cloud brightness, shadow density and cirrus density, each 0-1."""
        spec, f = self._date_fields(i)
        zeros = np.zeros(np.shape(e))
        if "cloud" in f:
            t = f["cloud_t"]
            d = np.clip((f["cloud"](e, n) - t) / 0.5, 0.0, 1.0)
            de, dn = spec.shadow_offset()
            s = np.clip((f["cloud"](e - de, n - dn) - t) / 0.5, 0.0, 1.0)
            bright = np.clip(6000.0 + 500.0 * f["cloud_tex"](e, n), 3500.0, 9000.0)
        else:
            d, s, bright = zeros, zeros, zeros
        if "cirrus" in f:
            ci = np.clip((f["cirrus"](e, n) - f["cirrus_t"]) / 0.8, 0.0, 1.0)
        else:
            ci = zeros
        return d, bright, s, ci

    def wedge_mask(self, i: int, e: np.ndarray, n: np.ndarray) -> np.ndarray:
        """True where a pixel lies beyond the swath edge on date ``i``."""
        spec = date_spec(self.seed, i, self.cloud_scale)
        if not spec.wedge:
            return np.zeros(np.shape(e), dtype=bool)
        return e > self._wedge_edge(n)

    def _wedge_edge(self, n: np.ndarray | float) -> np.ndarray | float:
        tile = self.tiles[1]
        w = self.width
        cx, cy = tile.x0 + w / 2, tile.y0 - w / 2
        lon, lat = Transformer.from_crs(tile.epsg, 4326, always_xy=True).transform(cx, cy)
        ce, cn = to_local(np.float64(lon), np.float64(lat))
        return (
            ce + (0.5 - _WEDGE_FRACTION) * w + math.tan(math.radians(_SWATH_SLANT_DEG)) * (n - cn)
        )

    def wedge_polygon(self) -> Polygon:
        """The swath (valid side of the edge) as a big lon/lat polygon."""
        big = 20.0 * self.width
        n_lo, n_hi = self.domain[2] - big, self.domain[3] + big
        e_edge_lo, e_edge_hi = float(self._wedge_edge(n_lo)), float(self._wedge_edge(n_hi))
        west = self.domain[0] - big
        es = np.array([west, e_edge_lo, e_edge_hi, west])
        ns = np.array([n_lo, n_lo, n_hi, n_hi])
        lon, lat = from_local(es, ns)
        return Polygon(zip(lon, lat, strict=True))

    # ---------------------------------------------------------------------- one item
    def render(
        self,
        tile: Tile,
        i: int,
        lonlat: tuple[np.ndarray, np.ndarray],
        surface: tuple[np.ndarray, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reflectance DN (6, H, W) uint16 and SCL (H, W) uint8 of one item."""
        spec, _ = self._date_fields(i)
        e, n = to_local(*lonlat)
        refl, scl = surface
        if spec.snow:
            refl, scl = refl.copy(), scl.copy()
            snow_refl, snow_scl = self.surface(e, n, snow=True)
            is_snow = snow_scl == 11
            refl[:, is_snow] = snow_refl[:, is_snow]
            scl[is_snow] = 11
        gains = np.asarray(spec.gains)[:, None, None]
        offsets = np.asarray(spec.offsets)[:, None, None]
        x = refl * gains + offsets
        d, bright, s, ci = self.atmosphere(i, e, n)
        # The faint fringes of shadows, cirrus and clouds (below the SCL thresholds used
        # further down) still change the pixels a little, as missed edges do in real data.
        x *= 1.0 - 0.62 * np.clip((s - 0.1) / 0.4, 0.0, 1.0)
        x += 900.0 * np.clip((ci - 0.05) / 0.95, 0.0, 1.0) * _CIRRUS_SPECTRUM[:, None, None]
        alpha = np.clip((d - 0.05) * 1.5, 0.0, 1.0)
        x = (1.0 - alpha) * x + alpha * (bright * _CLOUD_SPECTRUM[:, None, None])
        add = spec.boa_add
        dn = (np.clip(np.rint(x), 1.0, 65535.0 - add) + add).astype(np.uint16)

        scl = scl.copy()
        not_cloud = d < 0.15
        scl[(s >= 0.3) & not_cloud] = 3
        scl[(ci >= 0.2) & not_cloud] = 10
        scl[d >= 0.15] = 8
        scl[d >= 0.55] = 9
        nodata = self.wedge_mask(i, e, n)
        rng = stream_rng(self.seed, STREAM_ITEM + 10 * i + tile.index)
        candidates = np.flatnonzero(~nodata & not_cloud)
        n7 = int(round(0.001 * candidates.size))
        if n7:
            scl.ravel()[rng.choice(candidates, n7, replace=False)] = 7
        valid = np.flatnonzero(~nodata)
        n12 = min(int(rng.integers(1, 4)), valid.size)
        if n12:
            scl.ravel()[rng.choice(valid, n12, replace=False)] = 12
        dn[:, nodata] = 0
        scl[nodata] = 0
        return dn, scl


@functools.lru_cache(maxsize=4)
def cached_scene(seed: int, size: int, pixel_size: float, cloud_scale: float = 1.0) -> Scene:
    """The scene of a sample made with these parameters (a few are kept: they take a while)."""
    return Scene(seed, size, pixel_size, cloud_scale)


def sample_truth(
    lon: Any,
    lat: Any,
    *,
    seed: int = 0,
    size: int = 300,
    pixel_size: float = 60.0,
    date_index: int | None = None,
) -> dict[str, np.ndarray]:
    """The true surface of a sample catalog at given longitudes/latitudes.

    This is the cloud-free surface reflectance *before* the per-date gain/offset, shadows,
    clouds, rounding and BOA offset.  A clear, unshadowed pixel of date ``k`` holds
    ``rint(gain[k][band] * truth + offset[k][band]) + boa_add[k]`` (see ``s2cube-sample.json``).

    Parameters
    ----------
    lon, lat : array_like
        Coordinates in degrees (EPSG:4326), broadcastable to one shape.
    seed, size, pixel_size : int, int, float
        The parameters the catalog was made with (the scene depends on all three).
    date_index : int, optional
        Include the snow patch of that date, if it has one.

    Returns
    -------
    dict of str to numpy.ndarray
        One float64 array of reflectance DN (0-10000 scale, no BOA offset) per band in
        :data:`BANDS`, and ``"scl"``: the uint8 surface class (2, 4, 5, 6 or 11).
    """
    check_params(seed, 1, size, pixel_size)
    lon_a, lat_a = np.broadcast_arrays(
        np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    )
    scene = cached_scene(int(seed), int(size), float(pixel_size))
    snow = date_index is not None and date_spec(int(seed), int(date_index)).snow
    shape = lon_a.shape
    refl, scl = scene.surface(*to_local(lon_a.ravel(), lat_a.ravel()), snow=snow)
    out = {band: refl[b].reshape(shape) for b, band in enumerate(BANDS)}
    out["scl"] = scl.reshape(shape)
    return out


def rededge_dn(dn: np.ndarray) -> np.ndarray:
    """The three red-edge bands (3, H, W) uint16 of an item from its rendered bands (6, H, W).

    Each is ``red + f * (nir - red)`` with ``f`` 0.2, 0.7, 0.9 (B5, B6, B7): the red-edge rise
    of vegetation (red 350 / nir 3800 DN gives about 1040, 2770, 3460, as real B5-B7 of crops
    are) and flat for water, soil and clouds.  Computed from the item's own DN, the per-date
    gains, shadows, clouds and the +1000 BOA offset carry over exactly as in red and nir
    (the rule is affine with weights summing to 1), and nodata (0 in both) stays 0.  A
    simplification: real red edge has its own atmospheric and surface detail.
    """
    red = dn[BANDS.index("red")].astype(np.float64)
    nir = dn[BANDS.index("nir")].astype(np.float64)
    out = np.stack([np.rint(red + f * (nir - red)) for f in _REDEDGE_POSITION])
    return np.clip(out, 0, 65535).astype(np.uint16)
