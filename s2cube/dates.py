"""Date ranges as users write them, turned into the UTC datetimes STAC searches need.

This module owns date parsing for the whole package: ISO dates and datetimes (a day-only end
is inclusive), naive values read as UTC, and the ``start/end`` interval string of a STAC API
search.  Used by :mod:`s2cube.search` (the search window) and :mod:`s2cube.items` (the date of
an item without a processing baseline).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from .errors import InputError

__all__ = ["parse_date", "parse_dates", "stac_datetime"]


def parse_date(
    value: str | dt.date | dt.datetime | None, name: str, end: bool
) -> dt.datetime | None:
    """One date or datetime as an aware UTC datetime; ``None`` for an open end.

    Parameters
    ----------
    value
        An ISO string (``2023-08-01`` or ``2023-08-01T10:00:00Z``), a date, a datetime, or
        ``None`` / ``""`` / ``".."`` for an open end.
    name
        The argument's name, for the error message.
    end
        A day-only ``value`` means the end of that day (the last microsecond).

    Raises
    ------
    InputError
        If ``value`` is not a date.

    Examples
    --------
    >>> parse_date("2023-08-31", "end", end=True).isoformat()
    '2023-08-31T23:59:59.999999+00:00'
    """
    if value is None or value == "" or value == "..":
        return None
    if isinstance(value, dt.datetime):
        d = value
    elif isinstance(value, dt.date):
        d = dt.datetime(value.year, value.month, value.day)
        if end:
            d = d + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    else:
        text = str(value).strip()
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                d = dt.datetime.fromisoformat(text)
                if end:
                    d = d + dt.timedelta(days=1) - dt.timedelta(microseconds=1)
            else:
                d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InputError(
                f"{name}={value!r} is not a date; use ISO format, e.g. 2023-08-01 or "
                "2023-08-01T10:00:00Z"
            ) from exc
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return d


def parse_dates(
    start: Any = None, end: Any = None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """Parse a date range; ``end`` given as a day is inclusive.

    Raises
    ------
    InputError
        If a value is not a date or ``start`` is after ``end``.

    Examples
    --------
    >>> start, end = parse_dates("2023-08-01", "2023-08-31")
    >>> (end - start).days
    30
    """
    s = parse_date(start, "start", end=False)
    e = parse_date(end, "end", end=True)
    if s is not None and e is not None and s > e:
        raise InputError(
            f"start={start!r} is after end={end!r}; the date range is reversed, swap the two dates"
        )
    return s, e


def stac_datetime(start: dt.datetime | None, end: dt.datetime | None) -> str | None:
    """The ``datetime`` interval of a STAC API search (``..`` for an open end), or None."""
    if start is None and end is None:
        return None

    def fmt(d: dt.datetime | None) -> str:
        return ".." if d is None else d.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    return f"{fmt(start)}/{fmt(end)}"
