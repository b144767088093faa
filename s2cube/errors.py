"""The s2cube exception hierarchy.

Every error a user can cause derives from :class:`S2CubeError` and from the builtin
exception it behaves like, so ``except ValueError`` keeps working.  Messages name the bad
value, what was expected, and the fix.
"""

from __future__ import annotations


class S2CubeError(Exception):
    """Base class of every error raised by s2cube."""


class InputError(S2CubeError, ValueError):
    """An argument has a value that cannot be used (bad bbox, reversed dates, unknown band...)."""


class CatalogError(S2CubeError, OSError):
    """A STAC catalog could not be reached or read."""


class EmptySearchError(S2CubeError, LookupError):
    """A search returned no usable item."""


class StoreError(S2CubeError, OSError):
    """A path is not an s2cube store, or the store does not match the request."""


class RasterReadError(S2CubeError, OSError):
    """A raster could not be opened or read (the message names the asset and the fix)."""


class SceneReadError(RasterReadError):
    """One asset of a scene could not be read (after retries for a transient failure).

    Raised by the reader under a dropping :class:`~s2cube.reader.ReadPolicy` (the mosaic's
    reads, not strict): the driver drops that scene for the cell being computed, records it in
    the cell's manifest record and recomputes the cell from the other scenes.  ``href`` names
    the asset, ``reason`` the error, ``transient`` whether it looked transient.
    """

    def __init__(self, message: str, href: str = "", reason: str = "", transient: bool = False):
        super().__init__(message)
        self.href = href
        self.reason = reason
        self.transient = transient

    def __reduce__(self) -> tuple[type, tuple[str, str, str, bool]]:
        # distributed pickles errors raised on workers: keep the attributes
        return (type(self), (str(self), self.href, self.reason, self.transient))


class LimitError(InputError):
    """A run would exceed a stated size limit (cells, candidate scenes); the message prints the
    estimate and how to go ahead anyway (``--yes``, or ``confirm=True`` in the API)."""


class MissingDependencyError(S2CubeError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require(module: str, extra: str) -> object:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module!r} is needed for this feature but is not installed; "
            f"install it with: pip install 's2cube[{extra}]'"
        ) from exc
