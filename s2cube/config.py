"""The options of a mosaic run: what the pixels are, and how the run executes.

Two frozen, validated values (checked in ``__post_init__``, so an invalid one never exists):

* :class:`MosaicConfig`: the **result-defining** options.  Two runs with equal configs over
  the same scenes write identical stores; the whole config is recorded in every cell's
  manifest record.
* :class:`ExecutionOptions`: how the run executes (planning, block size, strict reads,
  overviews).  They never change a stored pixel: the planned composite equals the full read,
  and blocks tile exactly.

:class:`CompositeSpec` is what a block task needs of the config (derived, hashable).
Every field carries its help text in ``metadata["help"]``; the CLI generates one flag per
field from it, so every option is reachable from ``s2cube mosaic``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

from .errors import InputError, require
from .grid import GlobalGrid

__all__ = [
    "BLEND_METHODS",
    "FILL_DIRECTIONS",
    "HARMONIZE_METHODS",
    "INPAINT_METHODS",
    "LANDCOVER_MODELS",
    "MASK_METHODS",
    "RESAMPLING_METHODS",
    "CompositeSpec",
    "ExecutionOptions",
    "MosaicConfig",
    "PIXEL_NEUTRAL",
    "blend_halo",
    "check_bands",
    "check_priority",
]

HarmonizeMethod = Literal["linear", "histogram", "none"]
BlendMethod = Literal["feather", "multiband", "none"]
MaskMethod = Literal["scl", "model", "combined"]
Resampling = Literal["nearest", "bilinear", "cubic", "average"]
HARMONIZE_METHODS: tuple[str, ...] = get_args(HarmonizeMethod)
BLEND_METHODS: tuple[str, ...] = get_args(BlendMethod)
MASK_METHODS: tuple[str, ...] = get_args(MaskMethod)
RESAMPLING_METHODS: tuple[str, ...] = get_args(Resampling)
FillDirection = Literal["both", "back", "forward"]
InpaintMethod = Literal["none", "telea", "biharmonic"]
LandcoverModel = Literal["none", "unets", "unets-series", "dynamicworld"]
FILL_DIRECTIONS: tuple[str, ...] = get_args(FillDirection)
LANDCOVER_MODELS: tuple[str, ...] = get_args(LandcoverModel)
#: MosaicConfig options that do not change the mosaic's pixels: recorded, but a resume may
#: change them (asking for land cover on a finished mosaic adds it without redoing the mosaic)
PIXEL_NEUTRAL = frozenset({"landcover"})
INPAINT_METHODS: tuple[str, ...] = get_args(InpaintMethod)

DEFAULT_BANDS = ("red", "green", "blue", "nir")
#: the bands the learned cloud masks read
MODEL_BANDS = frozenset({"blue", "green", "red", "nir"})


def check_bands(bands: Any, *, allowed: Collection[str] | None = None) -> tuple[str, ...]:
    """Bands as a tuple of canonical names; :class:`InputError` for unknown or repeated ones.

    ``allowed`` defaults to the reflectance bands (a cube may also load e.g. ``aot``).
    """
    if isinstance(bands, str):
        bands = tuple(b.strip() for b in bands.split(",") if b.strip())
    from .items import REFLECTANCE_BANDS

    bands = tuple(bands)
    if not bands:
        raise InputError("bands is empty; give at least one, e.g. red,green,blue,nir")
    unknown = [b for b in bands if b not in (REFLECTANCE_BANDS if allowed is None else allowed)]
    if unknown:
        raise InputError(
            f"unknown band(s) {unknown}; choose from {', '.join(REFLECTANCE_BANDS)} "
            "(scl is always loaded)"
        )
    if len(set(bands)) != len(bands):
        raise InputError(f"bands={list(bands)} lists a band twice")
    return bands


def check_priority(priority: str) -> str:
    """Raise :class:`InputError` unless ``priority`` is recent, cloud or target:YYYY-MM-DD."""
    import datetime as dt

    if priority in ("recent", "cloud"):
        return priority
    if isinstance(priority, str) and priority.startswith("target:"):
        text = priority.split(":", 1)[1]
        try:
            dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise InputError(
                f"priority={priority!r}: {text!r} is not a date; use e.g. 'target:2023-08-15'"
            ) from exc
        return priority
    raise InputError(f"priority={priority!r}; choose 'recent', 'cloud' or 'target:YYYY-MM-DD'")


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InputError(f"{name}={value!r}; choose one of {', '.join(map(repr, choices))}")


#: upper bounds of pixel-count options: a mask dilation or blend of thousands of pixels is a
#: typo, and its halo makes every read of every block that much larger (``--dilation 2000``
#: passed 8 GiB in 19 s)
MAX_PIXELS = {
    "cloud_dilation": 100,
    "shadow_dilation": 100,
    "blend_width": 256,
    "plan_factor": 256,
    "model_context": 512,
    "model_factor": 64,
}


def _non_negative(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InputError(f"{name}={value!r} must be a whole number of pixels >= 0")
        _at_most(name, value)


def _at_most(name: str, value: int | None) -> None:
    top = MAX_PIXELS.get(name)
    if value is not None and top is not None and value > top:
        raise InputError(
            f"{name}={value} is beyond the sane limit of {top} px (every block would read a "
            f"halo of that size); use a value <= {top}"
        )


def blend_halo(width: int, method: str = "feather") -> int:
    """Pixels of context a blended pixel depends on (beyond the mask's own dilation)."""
    if width <= 0 or method == "none":
        return 0
    if method == "multiband":
        return int(math.ceil(width / 2)) + 1 + int(math.ceil(3 * width / 4)) + 1
    return int(math.ceil(width / 2)) + 1


def _opt(default: Any, help: str, **extra: Any) -> Any:  # noqa: A002 - click's word for it
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class MosaicConfig:
    """The result-defining options of a mosaic (frozen, validated, recorded in the store).

    Examples
    --------
    >>> MosaicConfig(blend="multiband", blend_width=16).halo  # dilation 2 + blending 22
    24
    >>> MosaicConfig(blend="median")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    s2cube.errors.InputError: blend='median'; choose one of 'feather', 'multiband', 'none'
    """

    bands: tuple[str, ...] = _opt(DEFAULT_BANDS, "Reflectance bands, comma-separated.")
    priority: str = _opt("recent", "Pixel priority: recent | cloud | target:YYYY-MM-DD.")
    cloud_dilation: int = _opt(2, "Pixels to grow clouds by.")
    shadow_dilation: int = _opt(2, "Pixels to grow cloud shadows by.")
    resampling: Resampling = _opt("nearest", "Resampling of reflectance (SCL: always nearest).")
    plan_factor: int = _opt(
        8, "Grid pixels per pixel of the planning look (its band looks feed harmonization)."
    )
    harmonize: HarmonizeMethod = _opt("linear", "Per-scene radiometric harmonization.")
    reference: str = _opt(
        "composite",
        "Harmonization reference: composite (coarse median), best (least cloudy scene) or "
        "the path of an s2cube store.",
    )
    blend: BlendMethod = _opt("feather", "Seam blending between source scenes.")
    blend_width: int = _opt(8, "Blend width in pixels.")
    haze_threshold: float | None = _opt(
        0.05, "Demote scenes whose median HOT exceeds this (none: off)."
    )
    mask_method: MaskMethod = _opt("scl", "Cloud mask: scl rules, a learned model, or combined.")
    model: str = _opt("csmask-l2a-4b", "Learned cloud-mask model (mask_method model/combined).")
    model_factor: int | None = _opt(
        None, "Grid pixels per model pixel (default: from the grid, ~30 m model pixels)."
    )
    model_context: int | None = _opt(
        None,
        "Context in grid pixels the learned mask gets around each block (default: the "
        "model's whole window, exactly tiling-invariant; smaller is faster but approximate).",
    )
    fill_periods: int = _opt(
        0,
        "Holes left after the period are filled from donor scenes of up to this many adjacent "
        "periods of the same length (needs start and end; 0: off; docs/fill.md).",
    )
    fill_direction: FillDirection = _opt(
        "both", "Where donor periods are searched: before the period, after it, or both."
    )
    inpaint: InpaintMethod = _opt(
        "none",
        "Spatial inpainting of the holes left after donors (flagged fill=3, never counted as "
        "observations; telea needs the 'fill' extra).",
    )
    landcover: LandcoverModel = _opt(
        "none",
        "After the mosaic, land cover into the same store: 'unets' (the seed's U-nets on the "
        "mosaic's 4 bands), 'unets-series' (the U-nets on each clear scene of the catalog, "
        "fused over the dates) or 'dynamicworld' (each clear scene, nine bands); "
        "the same as `s2cube landcover` afterwards (docs/landcover.md). The mosaic's pixels "
        "do not change.",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", check_bands(self.bands))
        check_priority(self.priority)
        _choice("resampling", self.resampling, RESAMPLING_METHODS)
        _choice("harmonize", self.harmonize, HARMONIZE_METHODS)
        _choice("blend", self.blend, BLEND_METHODS)
        _choice("mask_method", self.mask_method, MASK_METHODS)
        _choice("fill_direction", self.fill_direction, FILL_DIRECTIONS)
        _choice("inpaint", self.inpaint, INPAINT_METHODS)
        _choice("landcover", self.landcover, LANDCOVER_MODELS)
        if self.landcover == "unets" and not MODEL_BANDS <= set(self.bands):
            raise InputError(
                f"landcover='unets' reads the mosaic's red, green, blue and nir; "
                f"bands={list(self.bands)} lacks {sorted(MODEL_BANDS - set(self.bands))}"
            )
        fp = self.fill_periods
        if not isinstance(fp, int) or isinstance(fp, bool) or fp < 0:
            raise InputError(f"fill_periods={fp!r} must be a whole number of periods >= 0")
        if self.inpaint == "telea":
            require("cv2", "fill")
        _non_negative(self, "cloud_dilation", "shadow_dilation", "blend_width")
        if not isinstance(self.plan_factor, int) or self.plan_factor < 1:
            raise InputError(f"plan_factor={self.plan_factor!r} must be a whole number >= 1")
        _at_most("plan_factor", self.plan_factor)
        for name in ("model_factor", "model_context"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise InputError(f"{name}={value!r} must be None or a whole number >= 0")
            _at_most(name, value)
        if self.model_factor == 0:
            raise InputError("model_factor=0 must be >= 1 (or None: derived from the grid)")
        if self.haze_threshold is not None:
            if not math.isfinite(float(self.haze_threshold)):
                raise InputError(f"haze_threshold={self.haze_threshold!r} must be finite or None")
            object.__setattr__(self, "haze_threshold", float(self.haze_threshold))
        if not isinstance(self.reference, str) or not self.reference:
            raise InputError(
                f"reference={self.reference!r}; use 'composite', 'best' or a store path"
            )
        if self.mask_method != "scl":
            require("torch", "ml")
            missing = MODEL_BANDS - set(self.bands)
            if missing:
                raise InputError(
                    f"mask_method={self.mask_method!r} needs bands {sorted(missing)}; "
                    f"add them to bands={list(self.bands)}"
                )

    # ------------------------------------------------------------------ derived values
    @property
    def reference_store(self) -> str | None:
        """The reference store path, or None for 'composite'/'best'."""
        return None if self.reference in ("composite", "best") else self.reference

    @property
    def fills_holes(self) -> bool:
        """True when holes are filled after the period (donors and/or inpainting)."""
        return self.fill_periods > 0 or self.inpaint != "none"

    def for_grid(self, grid: GlobalGrid) -> MosaicConfig:
        """Resolve grid-dependent defaults (the learned mask's pixel factor)."""
        if self.mask_method == "scl" or self.model_factor is not None:
            return self
        pixel_m = float(grid.resolution) * 111_320.0
        return dataclasses.replace(self, model_factor=max(1, round(30.0 / pixel_m)))

    @property
    def spec(self) -> CompositeSpec:
        """What a block task needs of the config."""
        factor = self.model_factor or 1
        context = self.model_context if self.model_context is not None else 255 * factor
        return CompositeSpec(
            bands=self.bands,
            cloud_dilation=self.cloud_dilation,
            shadow_dilation=self.shadow_dilation,
            blend=self.blend,
            blend_width=self.blend_width,
            resampling=self.resampling,
            mask_method=self.mask_method,
            model=self.model,
            model_context=context if self.mask_method != "scl" else 0,
            model_factor=factor,
        )

    @property
    def halo(self) -> int:
        """Pixels of context around a cell (mask dilation + learned-mask context + blending)."""
        return self.spec.halo

    def to_record(self) -> dict[str, Any]:
        """Every option as JSON-ready values (what the store records)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> MosaicConfig:
        """The config back from :meth:`to_record` (unknown keys are an error)."""
        return _from_mapping(cls, record)


@dataclass(frozen=True)
class ExecutionOptions:
    """How a run executes; none of these changes a stored pixel."""

    plan: bool = _opt(
        True, "Read only the scenes each block needs (no-plan: every candidate, same result)."
    )
    block: int | None = _opt(
        None, "Processing block edge in pixels (default: a quarter cell, at most 1024)."
    )
    strict: bool = _opt(
        False,
        "Fail on the first unreadable asset instead of dropping its scene for the cell "
        "(recorded in the cell's record, see s2cube info).",
    )
    overviews: bool = _opt(True, "Build the multiscale overviews after the cells.")

    def __post_init__(self) -> None:
        if self.block is not None and (
            not isinstance(self.block, int) or not 16 <= self.block <= 16384
        ):
            raise InputError(f"block={self.block!r} must be None or a pixel count from 16 to 16384")

    def block_for(self, grid: GlobalGrid) -> int:
        """The processing block edge: small enough that the plan can stop early in most
        blocks, large enough that halo re-reads stay small (a quarter cell, ≤ 1024 px)."""
        if self.block is not None:
            return self.block
        return max(min(1024, grid.cell_pixels // 4), min(256, grid.cell_pixels))

    def to_record(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ExecutionOptions:
        return _from_mapping(cls, record)


@dataclass(frozen=True)
class CompositeSpec:
    """Everything a block task needs besides its data (hashable, travels into task keys)."""

    bands: tuple[str, ...] = DEFAULT_BANDS
    cloud_dilation: int = 2
    shadow_dilation: int = 2
    blend: str = "feather"
    blend_width: int = 8
    resampling: str = "nearest"
    mask_method: str = "scl"
    model: str = "csmask-l2a-4b"
    #: pixels of context the learned mask needs to be tiling-invariant (0 for SCL)
    model_context: int = 0
    #: grid pixels per model pixel (3 for the 30 m csmask models on the 10 m grid)
    model_factor: int = 1

    @property
    def mask_halo(self) -> int:
        """Context the mask of a pixel depends on (dilation, learned-mask window)."""
        context = self.model_context if self.mask_method != "scl" else 0
        return max(self.cloud_dilation, self.shadow_dilation) + context

    @property
    def blend_halo(self) -> int:
        return blend_halo(self.blend_width, self.blend)

    @property
    def halo(self) -> int:
        """Total context a block (or a cell) needs around its core."""
        return self.mask_halo + self.blend_halo


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _from_mapping(cls: Any, record: Mapping[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(record) - names)
    if unknown:
        raise InputError(
            f"unknown {cls.__name__} option(s) {unknown}; valid options: {', '.join(sorted(names))}"
        )
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items()}
    return cls(**values)
