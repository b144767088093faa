"""Where and when the synthetic sample was acquired: its two tiles, its dates and the sun.

This module owns the acquisition geometry of :mod:`s2cube.testing`: the local metric frame
around 12°E / 46.05°N in which every field of the scene is defined, the two scaled-down MGRS
tiles on their own UTM grids across the zone 32/33 boundary (:class:`Tile`), the acquisition
plan of each date (:class:`DateSpec`: platform, orbit, processing baseline, BOA offset,
radiometric gains, cloud targets) and the sun position that places cloud shadows.  No I/O.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from pyproj import Transformer
from rasterio.transform import Affine
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

from s2cube.errors import InputError
from s2cube.testing.noise import STREAM_DATE, stream_rng

__all__ = [
    "BOA_ADD_OFFSET",
    "SAMPLE_BBOX",
    "SAMPLE_DATES",
    "DateSpec",
    "Tile",
    "check_params",
    "date_spec",
    "earth_sun_factor",
    "from_local",
    "make_tiles",
    "mgrs_letters",
    "sun_position",
    "to_local",
]

#: A lon/lat bbox (W, S, E, N) straddling 12°E inside the area the two tiles cover together
#: (with the default ``size`` and ``pixel_size``, and with larger tiles), about 23 km × 11 km,
#: crossing the whole width of the strip where the two tiles overlap.  Demo-sized: 300 × 100 px
#: at 0.001°.
SAMPLE_BBOX: tuple[float, float, float, float] = (11.85, 46.0, 12.15, 46.1)

#: (start, end) ISO dates covering every acquisition of a catalog with ``n_dates <= 9``.
SAMPLE_DATES: tuple[str, str] = ("2023-08-01", "2023-08-31")

#: DN added to non-zero reflectance of items whose BOA offset is not applied.
BOA_ADD_OFFSET = 1000

_LON0 = 12.0  # the zone 32 / 33 boundary
_LAT0 = 46.05
_OVERLAP = 0.25  # overlap of the two tiles, as a fraction of their width
_M_PER_DEG_LAT = 111_132.954
_M_PER_DEG_LON = 111_319.491 * math.cos(math.radians(_LAT0))

# Fixed roles of the first six dates: (cloud fraction, cirrus fraction, baseline,
# boa_offset_applied, snow).  Orbit B (odd index) dates carry the swath wedge.
_FIXED_DATES: tuple[tuple[float, float, str, bool | None, bool], ...] = (
    (0.25, 0.10, "05.09", True, True),
    (0.10, 0.00, "05.10", False, False),
    (0.00, 0.00, "05.09", True, False),
    (0.80, 0.15, "05.09", True, True),
    (0.35, 0.20, "03.01", None, False),
    (0.05, 0.05, "05.09", True, False),
)
_FIRST_DAY = dt.date(2023, 8, 10)
# orbit -> (relative orbit, overpass time (h, m, s, µs), datatake start time)
_ORBITS = {"A": (22, (10, 17, 49, 24_000), "100559"), "B": (65, (10, 12, 8, 412_000), "100031")}
# platform -> (a day, its absolute orbit number)
_ABS_ORBIT_REF = {"S2A": (dt.date(2023, 8, 15), 42547), "S2B": (dt.date(2023, 8, 10), 33567)}

# local coordinates of one point (a numpy scalar) or of many (an array)
_Coord = TypeVar("_Coord", np.ndarray, np.float64)


def to_local(lon: _Coord, lat: _Coord) -> tuple[_Coord, _Coord]:
    """Lon/lat to the local equirectangular metres (east, north) around (12°E, 46.05°N)."""
    return (lon - _LON0) * _M_PER_DEG_LON, (lat - _LAT0) * _M_PER_DEG_LAT


def from_local(e: _Coord, n: _Coord) -> tuple[_Coord, _Coord]:
    """Inverse of :func:`to_local`."""
    return _LON0 + e / _M_PER_DEG_LON, _LAT0 + n / _M_PER_DEG_LAT


def mgrs_letters(zone: int, easting: float, northing: float, lat: float) -> tuple[str, str]:
    """MGRS latitude band and 100 km square letters (AA scheme) of a UTM position."""
    band = "CDEFGHJKLMNPQRSTUVWX"[min(int((lat + 80.0) // 8.0), 19)]
    col_sets = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")
    col = col_sets[(zone - 1) % 3][int(easting // 100_000) - 1]
    rows = "ABCDEFGHJKLMNPQRSTUV"
    row = rows[(int(northing // 100_000) + (5 if zone % 2 == 0 else 0)) % 20]
    return band, col + row


def sun_position(when: dt.datetime, lon: float, lat: float) -> tuple[float, float]:
    """Approximate solar (azimuth, zenith) in degrees (NOAA general solar position)."""
    doy = when.timetuple().tm_yday
    hour = when.hour + when.minute / 60 + (when.second + when.microsecond / 1e6) / 3600
    g = 2 * math.pi / 365 * (doy - 1 + (hour - 12) / 24)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(g)
        - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g)
        - 0.040849 * math.sin(2 * g)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(g)
        + 0.070257 * math.sin(g)
        - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g)
        - 0.002697 * math.cos(3 * g)
        + 0.00148 * math.sin(3 * g)
    )
    ha = math.radians((hour * 60 + eqtime + 4 * lon) / 4 - 180)
    phi = math.radians(lat)
    cos_zen = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    zen = math.degrees(math.acos(max(-1.0, min(1.0, cos_zen))))
    az = (
        math.degrees(
            math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi) - math.tan(decl) * math.cos(phi))
        )
        + 180.0
    )
    return az % 360.0, zen


def earth_sun_factor(day: dt.date) -> float:
    """The Earth-Sun distance factor (``s2:reflectance_conversion_factor``) of ``day``."""
    doy = day.timetuple().tm_yday
    return 1.0 / (1.0 - 0.01672 * math.cos(0.0172 * (doy - 4))) ** 2


@dataclass(frozen=True)
class Tile:
    """One scaled-down MGRS tile on its UTM grid."""

    index: int
    zone: int
    lat_band: str
    square: str
    x0: float
    y0: float
    size: int
    pixel_size: float

    @property
    def epsg(self) -> int:
        return 32600 + self.zone

    @property
    def mgrs(self) -> str:
        return f"{self.zone}{self.lat_band}{self.square}"

    @property
    def transform(self) -> Affine:
        return Affine(self.pixel_size, 0.0, self.x0, 0.0, -self.pixel_size, self.y0)

    @property
    def both_proj_keys(self) -> bool:
        """The zone-32 tile carries ``proj:epsg`` and ``proj:code``; the other only the latter."""
        return self.index == 0

    def pixel_lonlat(self) -> tuple[np.ndarray, np.ndarray]:
        """Lon/lat of every pixel centre, shape (size, size)."""
        c = self.x0 + (np.arange(self.size) + 0.5) * self.pixel_size
        r = self.y0 - (np.arange(self.size) + 0.5) * self.pixel_size
        xx, yy = np.meshgrid(c, r)
        tr = Transformer.from_crs(self.epsg, 4326, always_xy=True)
        lon, lat = tr.transform(xx, yy)
        return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)

    def footprint(self) -> Polygon:
        """The tile square in lon/lat (counter-clockwise)."""
        w = self.size * self.pixel_size
        xs = [self.x0, self.x0, self.x0 + w, self.x0 + w]
        ys = [self.y0, self.y0 - w, self.y0 - w, self.y0]
        # the corners suffice: over a tile, the square's edges are straight in lon/lat to < 1 m
        lon, lat = Transformer.from_crs(self.epsg, 4326, always_xy=True).transform(xs, ys)
        return orient(Polygon(zip(lon, lat, strict=True)), 1.0)


def make_tiles(size: int, pixel_size: float) -> tuple[Tile, Tile]:
    """The zone-32 (west) and zone-33 (east) tiles, overlapping across 12°E."""
    width = size * pixel_size

    def snap(v: float) -> float:
        return round(v / pixel_size) * pixel_size

    tiles = []
    for index, zone in enumerate((32, 33)):
        x, y = Transformer.from_crs(4326, 32600 + zone, always_xy=True).transform(_LON0, _LAT0)
        if index == 0:  # west tile: east edge overlap/2 east of 12°E
            x0 = snap(x + _OVERLAP * width / 2) - width
        else:  # east tile: west edge overlap/2 west of 12°E
            x0 = snap(x - _OVERLAP * width / 2)
        y0 = snap(y + width / 2)
        cx, cy = x0 + width / 2, y0 - width / 2
        _, clat = Transformer.from_crs(32600 + zone, 4326, always_xy=True).transform(cx, cy)
        band, square = mgrs_letters(zone, cx, cy, clat)
        tiles.append(Tile(index, zone, band, square, float(x0), float(y0), size, pixel_size))
    return tiles[0], tiles[1]


@dataclass(frozen=True)
class DateSpec:
    """Everything that is fixed for one acquisition date (both tiles)."""

    index: int
    day: dt.date
    platform: str  # "S2A" / "S2B"
    orbit: str  # "A" / "B"
    baseline: str
    boa_offset_applied: bool | None
    cloud_fraction: float
    cirrus_fraction: float
    snow: bool
    gains: tuple[float, ...]
    offsets: tuple[float, ...]
    cloud_height: float

    @property
    def wedge(self) -> bool:
        return self.orbit == "B"

    @property
    def boa_add(self) -> int:
        """DN added to the pixels (the BOA offset still in the data)."""
        applied = self.boa_offset_applied
        return BOA_ADD_OFFSET if (self.baseline >= "04.00" and applied is False) else 0

    @property
    def relative_orbit(self) -> int:
        return _ORBITS[self.orbit][0]

    @property
    def datatake_start(self) -> dt.datetime:
        """Start of the datatake (naive UTC), as in the product and datatake identifiers."""
        return dt.datetime.combine(self.day, dt.time.fromisoformat(_ORBITS[self.orbit][2]))

    @property
    def absolute_orbit(self) -> int:
        """Absolute orbit number of the platform on this day (about 14.3 orbits a day)."""
        ref_day, ref_orbit = _ABS_ORBIT_REF[self.platform]
        return ref_orbit + round(14.3 * (self.day - ref_day).days)

    def datetime(self, tile_index: int) -> dt.datetime:
        """Acquisition time of tile ``tile_index`` (the tiles of a date are 1.137 s apart)."""
        h, m, s, us = _ORBITS[self.orbit][1]
        t = dt.datetime(self.day.year, self.day.month, self.day.day, h, m, s, us, tzinfo=dt.UTC)
        return t - dt.timedelta(microseconds=1_137_000 * tile_index)

    def sun(self) -> tuple[float, float]:
        """Sun (azimuth, zenith) at the scene centre."""
        return sun_position(self.datetime(0), _LON0, _LAT0)

    def shadow_offset(self) -> tuple[float, float]:
        """Ground displacement (east, north) in metres from a cloud to its shadow."""
        az, zen = self.sun()
        length = self.cloud_height * math.tan(math.radians(zen))
        return (-length * math.sin(math.radians(az)), -length * math.cos(math.radians(az)))


def date_spec(seed: int, i: int, cloud_scale: float = 1.0) -> DateSpec:
    """The acquisition plan of date ``i`` of a sample made with ``seed``.

    ``cloud_scale`` multiplies every date's cloud and cirrus fractions (capped at 0.95): the
    same dates, cloudier or clearer (benchmarks at several cloudiness levels).
    """
    rng = stream_rng(seed, STREAM_DATE + 100 * i)
    day = _FIRST_DAY + dt.timedelta(days=5 * (i // 2) + (3 if i % 2 else 0))
    platform = "S2B" if (i // 2) % 2 == 0 else "S2A"
    orbit = "B" if i % 2 else "A"
    gains = tuple(float(v) for v in np.round(rng.uniform(0.9, 1.1, 6), 4))
    offsets = tuple(float(v) for v in np.round(rng.uniform(-50.0, 50.0, 6), 1))
    cloud_height = float(np.round(rng.uniform(2000.0, 3500.0), 1))
    if i < len(_FIXED_DATES):
        cloud, cirrus, baseline, applied, snow = _FIXED_DATES[i]
    else:
        cloud = float(np.round(rng.uniform(0.03, 0.6), 3))
        cirrus = float(np.round(rng.uniform(0.0, 0.2), 3))
        baseline, applied, snow = "05.09", True, False
    if cloud_scale != 1.0:
        cloud = float(np.round(min(cloud * cloud_scale, 0.95), 3))
        cirrus = float(np.round(min(cirrus * cloud_scale, 0.95), 3))
    return DateSpec(
        i,
        day,
        platform,
        orbit,
        baseline,
        applied,
        cloud,
        cirrus,
        snow,
        gains,
        offsets,
        cloud_height,
    )


def check_params(seed: int, n_dates: int, size: int, pixel_size: float) -> None:
    """Raise :class:`~s2cube.errors.InputError` unless these are valid sample parameters."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    if (
        isinstance(n_dates, bool)
        or not isinstance(n_dates, (int, np.integer))
        or not (1 <= n_dates <= 60)
    ):
        raise InputError(f"n_dates must be an integer from 1 to 60, got {n_dates!r}")
    if (
        isinstance(size, bool)
        or not isinstance(size, (int, np.integer))
        or not (32 <= size <= 4096)
    ):
        raise InputError(f"size must be an integer from 32 to 4096 pixels, got {size!r}")
    if not isinstance(pixel_size, (int, float, np.integer, np.floating)) or not (
        math.isfinite(pixel_size) and pixel_size > 0
    ):
        raise InputError(f"pixel_size must be a positive number of metres, got {pixel_size!r}")
    if size * pixel_size > 250_000:
        raise InputError(
            f"size * pixel_size must be at most 250 km, got {size * pixel_size} m; "
            "reduce size or pixel_size"
        )
