"""Priority order of observations (which scene a pixel looks at first).

* ``"recent"``: most recent first (default);
* ``"target:YYYY-MM-DD"``: closest to a target date first;
* ``"cloud"``: least cloudy scene (``eo:cloud_cover``) first.

Scenes the survey finds hazy are then moved to the end (:func:`demote_hazy`); the decision is
per scene, not per cell, so neighbouring cells agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError

__all__ = ["demote_hazy", "priority_order"]


def priority_order(
    times: Sequence[np.datetime64] | pd.DatetimeIndex,
    *,
    priority: str = "recent",
    cloud_cover: Sequence[float] | None = None,
    ids: Sequence[str] | None = None,
) -> np.ndarray:
    """Indices that sort observations into priority order (ties broken by id, then position).

    Raises
    ------
    InputError
        For an unknown priority or a target date that cannot be parsed.
    """
    t = pd.DatetimeIndex(pd.to_datetime(np.asarray(times)))
    if t.tz is not None:
        t = t.tz_convert("UTC").tz_localize(None)
    n = len(t)
    tie = np.asarray(ids if ids is not None else [""] * n, dtype=object)
    pos = np.arange(n)
    ns = t.asi8
    if priority == "recent":
        key: np.ndarray = -ns
    elif priority == "cloud":
        if cloud_cover is None:
            raise InputError("priority='cloud' needs the scenes' eo:cloud_cover")
        key = np.asarray(cloud_cover, dtype="float64")
    elif priority.startswith("target:"):
        text = priority.split(":", 1)[1]
        try:
            target = pd.Timestamp(dt.datetime.fromisoformat(text))
        except ValueError as exc:
            raise InputError(
                f"priority={priority!r}: {text!r} is not a date; use e.g. 'target:2023-08-15'"
            ) from exc
        if target.tz is not None:
            target = target.tz_convert("UTC").tz_localize(None)
        key = np.abs(ns - target.value).astype("float64")
    else:
        raise InputError(f"priority={priority!r}; choose 'recent', 'cloud' or 'target:YYYY-MM-DD'")
    order = sorted(pos, key=lambda i: (key[i], str(tie[i]), i))
    return np.asarray(order, dtype="intp")


def demote_hazy(
    candidates: Sequence[str], haze_scores: Mapping[str, float], threshold: float | None
) -> list[int]:
    """Priority order with hazy scenes (score > threshold) moved to the end, otherwise kept."""
    idx = list(range(len(candidates)))
    if threshold is None:
        return idx
    clear = [i for i in idx if not haze_scores.get(candidates[i], -1.0) > threshold]
    hazy = [i for i in idx if haze_scores.get(candidates[i], -1.0) > threshold]
    return clear + hazy
