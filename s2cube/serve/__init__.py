"""WMTS / XYZ tile service and web map for an s2cube store.

``create_app(store)`` builds the FastAPI app and ``run(store, host, port)`` serves it with
uvicorn.  The colour of a tile comes from the core rendering kernels in :mod:`s2cube.render` (the
global ``tone_curve``, re-exported here); :mod:`s2cube.serve.render` only encodes images for the
web.  Importing this package does not import the web stack; it is loaded when an app is created
(install it with ``pip install 's2cube[serve]'``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..render import tci, tone_curve

if TYPE_CHECKING:
    from .settings import ServeSettings

__all__ = ["create_app", "run", "tone_curve", "tci"]


def create_app(
    store: str | os.PathLike[str] | None = None, settings: ServeSettings | None = None
) -> Any:
    """Build the FastAPI app serving ``store``; see :func:`s2cube.serve.app.create_app`."""
    from .app import create_app as _create_app

    return _create_app(store, settings)


def run(
    store: str | os.PathLike[str] | None = None,
    host: str | None = None,
    port: int | None = None,
    *,
    settings: ServeSettings | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``store`` over HTTP until interrupted (settings also from ``S2CUBE_*``).

    Examples
    --------
    >>> run("mosaic.zarr", "127.0.0.1", 8000)  # doctest: +SKIP
    """
    from ..errors import require

    require("uvicorn", "serve")
    import uvicorn

    from .settings import ServeSettings

    settings = settings or ServeSettings()
    updates = {
        k: v for k, v in {"store": store, "host": host, "port": port}.items() if v is not None
    }
    settings = settings.model_copy(update=updates)
    app = create_app(settings.store, settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level)
