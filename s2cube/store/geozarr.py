"""GeoZarr convention attributes: ``proj:`` (the CRS) and ``spatial:`` (array index ↔ degrees).

Pure functions, no I/O: a :class:`~s2cube.window.Window` (the store's root is
``grid.window()``, overview level ``k`` is ``grid.window(2**k)``) in, a JSON-ready attribute
dict out.  The store template and the overview template merge them into the attributes of
every group and every data array they create, next to the CF ``grid_mapping``/``spatial_ref``
that xarray and rioxarray read, so both kinds of reader find the CRS and the georeferencing.

Conventions written (zarr-conventions, registered in each node's ``zarr_conventions``):

* ``proj`` v0.1: ``proj:code`` (``EPSG:4326``);
* ``spatial`` v0.1: ``spatial:dimensions`` (``["latitude", "longitude"]``: Y then X),
  ``spatial:transform`` (affine ``[a, b, c, d, e, f]`` in rasterio/``affine`` order,
  ``x = a·col + b·row + c``, ``y = d·col + e·row + f``, pixel corners), ``spatial:shape``,
  ``spatial:bbox`` (``[xmin, ymin, xmax, ymax]`` of the pixel edges) and
  ``spatial:registration`` (``"pixel"``).

The multiscales layout carries ``spatial:transform``/``spatial:shape`` per level as the
spatial convention recommends (:func:`layout_spatial`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..window import Window

__all__ = [
    "CRS_CODE",
    "DIMENSIONS",
    "PROJ_CONVENTION",
    "SPATIAL_CONVENTION",
    "convention_entries",
    "layout_spatial",
    "merge_conventions",
    "node_attrs",
    "spatial_transform",
]

CRS_CODE = "EPSG:4326"
#: the store's spatial dimensions, Y first (the order ``spatial:dimensions`` requires)
DIMENSIONS = ("latitude", "longitude")

PROJ_CONVENTION: dict[str, str] = {
    "schema_url": "https://raw.githubusercontent.com/zarr-conventions/proj/refs/tags/v0.1/schema.json",
    "spec_url": "https://github.com/zarr-conventions/proj/blob/v0.1/README.md",
    "uuid": "f17cb550-5864-4468-aeb7-f3180cfb622f",
    "name": "proj",
    "description": "Coordinate reference system information for geospatial data",
}
SPATIAL_CONVENTION: dict[str, str] = {
    "schema_url": (
        "https://raw.githubusercontent.com/zarr-conventions/spatial/refs/tags/v0.1/schema.json"
    ),
    "spec_url": "https://github.com/zarr-conventions/spatial/blob/v0.1/README.md",
    "uuid": "689b58e2-cf7b-45e0-9fff-9cfc0883d6b4",
    "name": "spatial",
    "description": "Spatial coordinate information",
}


def convention_entries() -> list[dict[str, str]]:
    """The ``zarr_conventions`` entries of the two conventions (fresh copies)."""
    return [dict(PROJ_CONVENTION), dict(SPATIAL_CONVENTION)]


def merge_conventions(known: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``known`` ``zarr_conventions`` entries with proj and spatial registered once each.

    Entries of other conventions (e.g. multiscales) are kept, in order; an older entry of
    proj or spatial (same uuid or name) is replaced by the current one.

    Examples
    --------
    >>> ms = {"name": "multiscales", "schema_url": "https://example.org/ms.json"}
    >>> [c["name"] for c in merge_conventions([ms, {"name": "proj"}])]
    ['multiscales', 'proj', 'spatial']
    """
    mine = convention_entries()
    ids = {c["uuid"] for c in mine} | {c["name"] for c in mine}
    kept = [dict(c) for c in known if c.get("uuid") not in ids and c.get("name") not in ids]
    return kept + mine


def spatial_transform(window: Window) -> list[float]:
    """The window's affine in the spatial convention's order ``[a, b, c, d, e, f]``.

    Examples
    --------
    >>> from s2cube.grid import GlobalGrid
    >>> spatial_transform(GlobalGrid(resolution="1/400").window(2))
    [0.005, 0.0, -180.0, 0.0, -0.005, 90.0]
    """
    c, a, b, f, d, e = window.geotransform
    return [float(a), float(b), float(c), float(d), float(e), float(f)]


def layout_spatial(window: Window) -> dict[str, Any]:
    """``spatial:transform`` and ``spatial:shape`` of one multiscales layout entry."""
    return {"spatial:transform": spatial_transform(window), "spatial:shape": list(window.shape)}


def node_attrs(window: Window, conventions: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The proj + spatial attributes of a group or an array covering ``window``.

    Parameters
    ----------
    window
        The node's extent: ``grid.window()`` for the root and its arrays, the level's window
        for an overview level and its arrays.
    conventions
        The node's current ``zarr_conventions`` (kept; proj and spatial are added).

    Examples
    --------
    >>> from s2cube.grid import GlobalGrid
    >>> attrs = node_attrs(GlobalGrid(resolution="1/400").window(4))
    >>> attrs["proj:code"], attrs["spatial:shape"], attrs["spatial:bbox"]
    ('EPSG:4326', [18000, 36000], [-180.0, -90.0, 180.0, 90.0])
    >>> [c["name"] for c in attrs["zarr_conventions"]]
    ['proj', 'spatial']
    """
    return {
        "zarr_conventions": merge_conventions(conventions),
        "proj:code": CRS_CODE,
        "spatial:dimensions": list(DIMENSIONS),
        "spatial:transform_type": "affine",
        "spatial:registration": "pixel",
        **layout_spatial(window),
        "spatial:bbox": list(window.bounds),
    }
