"""Per-scene parameters: transfer knots and haze scores, fitted from the survey (numpy).

A scene's parameters are fitted once for the whole area (never per cell) and kept in the
store's scene table, so a scene looks the same in every cell and a rerun reuses them: values
already in the store win over a new fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..mask import CLEAR
from .haze import haze_optimized_transform, haze_score
from .radiometry import IDENTITY, apply_knots, fit_transfer, reference_composite

if TYPE_CHECKING:
    import xarray as xr

    from ..config import MosaicConfig
    from ..plan import ColourSample, Survey

__all__ = ["SceneParams", "colour_metrics", "fit_cube_params", "fit_scene_params"]

#: the bands the survey looks at (harmonization samples, haze score)
LOOK_BANDS = ("blue", "green", "red", "nir")
Knots = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class SceneParams:
    """One scene's fitted parameters: haze score (median HOT) and per-band transfer knots."""

    haze: float | None
    knots: tuple[Knots, ...]
    bands: tuple[str, ...]
    harmonize: str

    def knots_for(self, bands: Sequence[str]) -> list[Knots]:
        """Knots of ``bands`` (identity for a band that was not fitted)."""
        pos = {b: i for i, b in enumerate(self.bands)}
        return [self.knots[pos[b]] if b in pos else IDENTITY for b in bands]

    def to_record(self) -> dict[str, Any]:
        """JSON-ready entry of the store's scene table."""
        return {
            "haze": self.haze,
            "knots": [list(map(list, k)) for k in self.knots],
            "harmonize": self.harmonize,
            "bands": list(self.bands),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SceneParams | None:
        """From a scene-table entry (None when it holds no fitted knots)."""
        if record.get("knots") is None:
            return None
        haze = record.get("haze")
        return cls(
            haze=None if haze is None else float(haze),
            knots=tuple(_as_knots(k) for k in record["knots"]),
            bands=tuple(record.get("bands") or ()),
            harmonize=str(record.get("harmonize", "linear")),
        )


def _as_knots(k: Sequence[Sequence[float]]) -> Knots:
    return (tuple(map(float, k[0])), tuple(map(float, k[1])))


def _haze(samples: Sequence[np.ndarray]) -> float | None:
    score = haze_score(samples)
    return score if np.isfinite(score) else None


def fit_scene_params(
    surveys: Mapping[str, Survey],
    config: MosaicConfig,
    known: Mapping[str, SceneParams] | None = None,
) -> dict[str, SceneParams]:
    """Haze score and transfer knots of every surveyed scene, pooled over all cells.

    ``known`` parameters (from a store's scene table) win: a scene keeps its haze score, and
    its knots when they were fitted with the same harmonization method.
    """
    known = known or {}
    haze_samples: dict[str, list[np.ndarray]] = {}
    pairs: dict[str, list[np.ndarray]] = {}
    for sv in surveys.values():
        for sid, hot in sv.haze.items():
            haze_samples.setdefault(sid, []).append(hot)
        for sid, pr in sv.pairs.items():
            pairs.setdefault(sid, []).append(pr)
    band_pos = {b: i for i, b in enumerate(LOOK_BANDS)}
    out: dict[str, SceneParams] = {}
    for sid in sorted(set(haze_samples) | set(known)):
        old = known.get(sid)
        haze = (
            old.haze
            if old is not None and old.haze is not None
            else _haze(haze_samples.get(sid, []))
        )
        if old is not None and old.harmonize == config.harmonize:
            out[sid] = SceneParams(haze, old.knots, old.bands, config.harmonize)
            continue
        got = pairs.get(sid, [])
        per_band: list[Knots] = []
        for band in config.bands:
            if config.harmonize == "none" or band not in band_pos or not got:
                per_band.append(IDENTITY)
                continue
            i = band_pos[band]
            x = np.concatenate([p[0][i] for p in got])
            y = np.concatenate([p[1][i] for p in got])
            per_band.append(fit_transfer(x, y, config.harmonize))
        out[sid] = SceneParams(haze, tuple(per_band), config.bands, config.harmonize)
    return out


def fit_cube_params(
    cube: xr.DataArray, codes: xr.DataArray, config: MosaicConfig, *, n_samples: int = 2000
) -> dict[str, SceneParams]:
    """Scene parameters fitted on a cube alone (what :func:`s2cube.composite` uses when it is
    given none): the same fit as the survey's, on the cube decimated by ``config.plan_factor``.
    """
    f = config.plan_factor
    bands = [b for b in LOOK_BANDS if b in cube.band.values]
    ids = [str(i) for i in cube.coords["id"].values] if "id" in cube.coords else None
    ids = ids or [str(i) for i in range(cube.sizes["time"])]
    look = np.asarray(cube.sel(band=bands)[..., ::f, ::f].values, dtype="uint16")
    clear = np.asarray(codes[..., ::f, ::f].values) == CLEAR
    ref = reference_composite(look, clear)
    rng = np.random.default_rng(0)
    out: dict[str, SceneParams] = {}
    for k, sid in enumerate(ids):
        ok = (clear[k] & (look[k] > 0).all(axis=0)).ravel()
        idx = np.flatnonzero(ok)
        if idx.size > n_samples:
            idx = np.sort(rng.choice(idx, n_samples, replace=False))
        x = look[k].reshape(len(bands), -1)[:, idx]
        y = ref.reshape(len(bands), -1)[:, idx]
        haze = None
        if "blue" in bands and "red" in bands and idx.size:
            hot = haze_optimized_transform(x[bands.index("blue")], x[bands.index("red")])
            haze = _haze([hot])
        per_band: list[Knots] = []
        for band in config.bands:
            if config.harmonize == "none" or band not in bands:
                per_band.append(IDENTITY)
                continue
            i = bands.index(band)
            good = np.isfinite(y[i])
            per_band.append(fit_transfer(x[i][good], y[i][good], config.harmonize))
        out[sid] = SceneParams(haze, tuple(per_band), config.bands, config.harmonize)
    return out


def colour_metrics(
    sample: ColourSample, params: Mapping[str, SceneParams], bands: Sequence[str]
) -> dict[str, float]:
    """Mean |difference| between overlapping scenes on shared clear pixels, before/after
    harmonization (absolute DN and relative to the mean reflectance)."""
    ids = sample.ids
    codes, vals = sample.codes, sample.bands
    pos = {b: i for i, b in enumerate(LOOK_BANDS)}
    use = [(j, pos[b]) for j, b in enumerate(bands) if b in pos]
    raw = np.zeros((len(ids), len(use), codes.shape[1]), "float64")
    har = np.zeros_like(raw)
    for k, sid in enumerate(ids):
        knots = params[sid].knots_for(bands) if sid in params else None
        for u, (j, i) in enumerate(use):
            raw[k, u] = vals[k, i]
            har[k, u] = apply_knots(vals[k, i].astype("uint16"), knots[j]) if knots else vals[k, i]
    tot_r = tot_h = 0.0
    n = 0
    mean_refl = []
    for a in range(len(ids)):
        for b in range(a + 1, len(ids)):
            ok = (codes[a] == CLEAR) & (codes[b] == CLEAR)
            if ok.sum() < 30:
                continue
            tot_r += np.abs(raw[a][:, ok] - raw[b][:, ok]).sum()
            tot_h += np.abs(har[a][:, ok] - har[b][:, ok]).sum()
            n += int(ok.sum()) * len(use)
            mean_refl.append(raw[a][:, ok].mean())
    if n == 0:
        return {}
    scale = float(np.mean(mean_refl)) or 1.0
    return {
        "colour_diff_raw": tot_r / n,
        "colour_diff_harmonized": tot_h / n,
        "colour_diff_raw_rel": tot_r / n / scale,
        "colour_diff_harmonized_rel": tot_h / n / scale,
    }
