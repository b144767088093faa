"""The read policy of :mod:`s2cube.reader`: one GDAL environment and one rule for failed reads.

This module owns what every read of the package shares:

* **one GDAL environment**, :func:`gdal_env`: stackstac's layered options (HTTP range merging;
  no directory listing and a cached header on open; no cache for pixel reads) plus
  ``GDAL_VRT_WARP_USE_DATASET_RASTERIO=NO``, which makes a warped pixel independent of the
  window that read it (see :func:`gdal_env`);
* **one policy for failed reads**, :class:`ReadPolicy`: a known transient failure (HTTP 5xx, a
  timeout, a reset connection, a remote read cut short) is retried with exponential backoff
  (:attr:`ReadPolicy.retries`); if it still fails it becomes a :class:`ReadFailureWarning`
  naming the asset, and its pixels become nodata; any other failure, or any failure with
  ``strict=True``, raises :class:`~s2cube.errors.RasterReadError`.  The mosaic's reads use a
  *dropping* policy (:attr:`ReadPolicy.drop`, set with :func:`dropping_reads`): every failure
  that survives the retries raises :class:`~s2cube.errors.SceneReadError`, and the driver
  drops that scene for the cell (never nodata pixels of one band under a clear SCL);
* the resampling methods every read accepts (:data:`RESAMPLING`).

Tasks never touch process-global warning filters: a failure is reported by a warning of its
own class, which the caller may filter.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import RasterReadError, SceneReadError

if TYPE_CHECKING:
    from stackstac.rio_env import LayeredEnv

__all__ = [
    "REMOTE_SHORT_READS",
    "RESAMPLING",
    "TRANSIENT_ERRORS",
    "RasterReadError",
    "ReadFailureWarning",
    "ReadPolicy",
    "SceneReadError",
    "dropping_reads",
    "gdal_env",
    "read_policy",
]

T = TypeVar("T")
#: dask config keys of the reads' policy (resolved when a read or a stack is built)
RETRIES_KEY = "s2cube.read.retries"
BACKOFF_KEY = "s2cube.read.backoff"
DROP_KEY = "s2cube.read.drop"
#: retries of a transient failure (after the first attempt) and the first backoff in seconds
#: (doubled at every retry): 0.25 + 0.5 + 1 s before an asset counts as failed
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.25
#: :func:`dropping_reads` per thread (a worker's threads run different tasks at once, so
#: never a process-global switch)
_LOCAL = threading.local()

#: regular expressions (searched in the message of an error and of every error it was raised
#: from) that mark a read failure as transient: worth a retry later, not a broken asset
TRANSIENT_ERRORS: tuple[str, ...] = (
    r"HTTP response code: 5\d\d",
    r"timed out",
    r"Connection reset",
)
#: GDAL's /vsicurl/ reports a failed range request (5xx, reset) only as a read that came back
#: short: "TIFFFillTile:Read error at row ..., got 0 bytes, expected 716932" for pixels, "Failed
#: to read directory at offset ..." for a TIFF directory.  On a remote asset that is the same
#: transient failure; on a local file it means a truncated file, which is not transient.
REMOTE_SHORT_READS: tuple[str, ...] = (
    r"got \d+ bytes, expected \d+",
    r"Failed to read directory at offset",
)
_REMOTE = re.compile(r"^(/vsi(curl|s3|gs|az|adls|oss|swift)|https?://|s3://|gs://|az://)", re.I)
#: resampling methods of the reads
RESAMPLING = ("nearest", "bilinear", "cubic", "average")


# --------------------------------------------------------------------------- warning and policy
class ReadFailureWarning(UserWarning):
    """A transient read failure was turned into nodata; :attr:`href` names the asset.

    Its class lets a caller (or a test, ``pytest.warns(ReadFailureWarning)``) tell it from any
    other warning; pass ``strict=True`` to the reading function to make such failures fatal.
    """

    def __init__(self, href: str, reason: str) -> None:
        super().__init__(href, reason)
        self.href = href
        self.reason = reason

    def __str__(self) -> str:
        return (
            f"reading {self.href!r} failed ({self.reason}); its pixels are nodata in this "
            "result. Pass strict=True to make such failures fatal"
        )


def _messages(error: BaseException) -> list[str]:
    """The messages of an error and of the errors it was raised from (rasterio chains GDAL's)."""
    out: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        out.append(str(current))
        # the explicit cause, else the error being handled when this one was raised (as
        # Python's traceback follows them)
        suppressed = current.__suppress_context__
        current = current.__cause__ or (None if suppressed else current.__context__)
    return out


@dataclass(frozen=True)
class ReadPolicy:
    """What a failed read does: warn and give nodata (transient, not strict) or raise.

    A frozen value, so it travels into dask tasks and hashes into their keys.

    Parameters
    ----------
    strict
        Raise :class:`RasterReadError` on every failure, transient or not.
    transient
        Regular expressions that mark an error message as transient (:data:`TRANSIENT_ERRORS`).
    remote_short_reads
        Further ones that do so for a remote asset only (:data:`REMOTE_SHORT_READS`).
    retries
        How many times a transient failure is retried (:meth:`run`) before it counts.
    backoff
        Seconds before the first retry, doubled at every further one.
    drop
        Every failure that counts raises :class:`~s2cube.errors.SceneReadError` (unless
        ``strict``, which raises :class:`RasterReadError`): the caller drops the scene instead
        of compositing nodata pixels of one of its bands.

    Examples
    --------
    >>> ReadPolicy().is_transient(OSError("HTTP response code: 503"), "https://x/B04.tif")
    True
    >>> ReadPolicy().is_transient(OSError("not a TIFF file"), "https://x/B04.tif")
    False
    """

    strict: bool = False
    transient: tuple[str, ...] = TRANSIENT_ERRORS
    remote_short_reads: tuple[str, ...] = REMOTE_SHORT_READS
    retries: int = 0
    backoff: float = DEFAULT_BACKOFF
    drop: bool = False

    def run(self, href: str, read: Callable[[], T]) -> T:
        """``read()``, retried with exponential backoff while it fails transiently.

        The last error propagates (for :meth:`handle`); a permanent one at once.
        """
        attempt = 0
        while True:
            try:
                return read()
            except Exception as exc:
                if attempt >= self.retries or not self.is_transient(exc, href):
                    raise
                time.sleep(self.backoff * 2**attempt)
                attempt += 1
                if _REMOTE.match(href):
                    forget_remote_failures()

    def is_transient(self, error: BaseException, href: str) -> bool:
        """Whether ``error`` (reading ``href``) is a known transient failure."""
        messages = _messages(error)
        patterns = self.transient + (self.remote_short_reads if _REMOTE.match(href) else ())
        return any(re.search(p, m) for p in patterns for m in messages)

    def handle(self, href: str, error: BaseException) -> None:
        """Warn about a transient failure (the caller then returns nodata), or raise.

        Raises
        ------
        RasterReadError
            When the failure is not transient, or the policy is strict.
        """
        transient = self.is_transient(error, href)
        if self.drop and not self.strict:
            tries = f" after {self.retries} retries" if transient and self.retries else ""
            # no chained cause: distributed pickles an error with its causes, and GDAL's
            # errors do not unpickle (the task's error would arrive as a bare Exception);
            # callers raise it outside their except block for the same reason
            raise SceneReadError(
                f"reading {href!r} failed{tries}: {error}",
                href=href,
                reason=str(error),
                transient=transient,
            )
        if transient and not self.strict:
            warnings.warn(ReadFailureWarning(href, str(error)), stacklevel=3)
            return
        if transient:
            fix = (
                "it looks transient (HTTP 5xx, timeout, reset connection): retry later, or "
                "pass strict=False to turn such failures into nodata with a ReadFailureWarning"
            )
        else:
            fix = "check that the asset exists, is reachable and is a raster GDAL can read"
        raise RasterReadError(f"reading {href!r} failed: {error}; {fix}") from error


@functools.cache
def _libgdal() -> Any:
    """rasterio's own GDAL library through ctypes (None if it cannot be found)."""
    import ctypes
    import ctypes.util
    from pathlib import Path

    import rasterio

    here = Path(rasterio.__file__).parent
    found = sorted(str(p) for p in (here.parent / "rasterio.libs").glob("libgdal*.so*"))
    for name in [*found, ctypes.util.find_library("gdal")]:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            lib.VSICurlClearCache  # noqa: B018 - the symbol must exist
        except (OSError, AttributeError):
            continue
        return lib
    return None


def forget_remote_failures() -> None:
    """Clear GDAL's /vsicurl/ cache before a retry: it remembers a failed request (a 503 on
    the first request of a file reads as "no such file" until the process ends), so without
    this a retry of a remote asset could never succeed."""
    lib = _libgdal()
    if lib is not None:
        lib.VSICurlClearCache()


def read_policy(strict: bool = False) -> ReadPolicy:
    """The policy of a read built now: ``strict`` plus retries and backoff from dask's config
    (:data:`RETRIES_KEY`, :data:`BACKOFF_KEY`; defaults :data:`DEFAULT_RETRIES` retries from
    :data:`DEFAULT_BACKOFF` s) and dropping inside :func:`dropping_reads` (or
    :data:`DROP_KEY`).

    >>> read_policy().retries
    3
    """
    import dask

    return ReadPolicy(
        strict=strict,
        retries=int(dask.config.get(RETRIES_KEY, DEFAULT_RETRIES)),
        backoff=float(dask.config.get(BACKOFF_KEY, DEFAULT_BACKOFF)),
        drop=bool(getattr(_LOCAL, "drop", None) or dask.config.get(DROP_KEY, False)),
    )


@contextlib.contextmanager
def dropping_reads(drop: bool = True) -> Iterator[None]:
    """Reads built inside (in this thread) raise :class:`~s2cube.errors.SceneReadError` for a
    failed asset (after retries) instead of giving nodata: the mosaic engine drops the scene
    for the cell.

    >>> with dropping_reads():
    ...     read_policy().drop
    True
    """
    before = getattr(_LOCAL, "drop", None)
    _LOCAL.drop = drop
    try:
        yield
    finally:
        _LOCAL.drop = before


# --------------------------------------------------------------------------- GDAL environment
@functools.cache
def gdal_env() -> LayeredEnv:
    """The one GDAL environment of every read: stackstac's options plus block-wise warping.

    Layers (a ``stackstac.rio_env.LayeredEnv``): ``.open`` while opening a dataset (no
    directory listing, cached headers), ``.read`` while reading pixels (no cache), ``.always``
    for local files that may carry sidecars (``.aux.xml``, world files, masks).

    For a large request GDAL's warped VRT warps the requested window directly (GDAL 3.10 here),
    and its approximate transformer then interpolates along the rows of *that window*: with
    nearest resampling up to ~0.5 % of pixels (10 m data on the 1/12000° grid) pick a neighbouring
    source pixel depending on how the array was chunked.  With
    ``GDAL_VRT_WARP_USE_DATASET_RASTERIO=NO`` every read is served from the VRT's own
    512×128 blocks, which :data:`s2cube.cube.VRT_ALIGN` puts on one global tiling: a pixel's value
    no longer depends on the read window, the chunking or the cell (and the block path measured
    faster).
    :func:`read_warped` alone, a one-shot read of a whole target, keeps GDAL's whole-window warp
    (:data:`~s2cube.reader.warp._WHOLE_TARGET_WARP`).

    Examples
    --------
    >>> with gdal_env().open:  # doctest: +SKIP
    ...     ds = rasterio.open(href)
    """
    from stackstac.rio_reader import DEFAULT_GDAL_ENV

    return DEFAULT_GDAL_ENV.updated(always={"GDAL_VRT_WARP_USE_DATASET_RASTERIO": "NO"})
