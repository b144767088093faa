"""``s2cube serve`` and ``s2cube overviews`` (click commands the main CLI registers)."""

from __future__ import annotations

import json

import click

__all__ = ["serve", "overviews"]


@click.command("serve")
@click.argument("store", required=False)
@click.option("--host", default=None, help="interface to listen on [S2CUBE_HOST, 127.0.0.1]")
@click.option("--port", default=None, type=int, help="TCP port [S2CUBE_PORT, 8000]")
@click.option(
    "--no-overviews",
    is_flag=True,
    default=False,
    help="read only the full resolution (for comparisons) [S2CUBE_USE_OVERVIEWS]",
)
def serve(store: str | None, host: str | None, port: int | None, no_overviews: bool) -> None:
    """Serve STORE over WMTS 1.0.0 / XYZ with a web map at /.

    STORE is a local path or a URL (s3://bucket/m.zarr; credentials from the environment,
    AWS_* or S2CUBE_STORAGE_OPTIONS as JSON).  Every option can also be set in the environment
    with the prefix S2CUBE_ (S2CUBE_STORE, S2CUBE_HOST, S2CUBE_PORT, S2CUBE_TILE_SIZE, ...).
    Cells finished while it runs are served (S2CUBE_RELOAD_INTERVAL); capabilities name
    S2CUBE_PUBLIC_URL when set, never an unlisted Host header (S2CUBE_ALLOWED_HOSTS).
    A super-resolution product at STORE/superres/x<scale> is served as layer superres-x<scale>.
    """
    from pydantic import ValidationError

    from . import run
    from .settings import ServeSettings

    try:
        settings = ServeSettings()
    except ValidationError as exc:
        bad = "; ".join(
            f"S2CUBE_{'_'.join(str(p) for p in e.get('loc', ())).upper()}: {e.get('msg')}"
            for e in exc.errors()
        )
        raise click.UsageError(f"bad server setting: {bad}") from None
    if no_overviews:
        settings = settings.model_copy(update={"use_overviews": False})
    if store is None and settings.store is None:
        raise click.UsageError("give STORE or set S2CUBE_STORE")
    click.echo(
        f"serving {store or settings.store} on http://{host or settings.host}:"
        f"{port or settings.port}/  (WMTS: /wmts?SERVICE=WMTS&REQUEST=GetCapabilities)"
    )
    run(store, host, port, settings=settings)


@click.command("overviews")
@click.argument("store")
@click.option("--cell", "cells", multiple=True, help="only these cells (default: missing/stale)")
@click.option("--force", is_flag=True, help="rebuild every finished cell")
@click.option("--json", "as_json", is_flag=True, help="print what was built as JSON")
def overviews(store: str, cells: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Build or refresh the multiscale overviews of STORE (per cell, then coarse levels).

    Holds the store's writer lease while it writes (refused while a mosaic run writes).
    """
    from ..overviews import build_overviews
    from ..store import Lease, _require_store

    loc = _require_store(store)
    with Lease(loc):
        out = build_overviews(loc, list(cells) or None, force=force)
    if as_json:
        click.echo(json.dumps(out, indent=1))
        return
    built, chunks = out["cells"], out["coarse_chunks"]
    if not built and not chunks:
        click.echo(
            f"overviews of {store} are up to date: nothing to build "
            "(--force rebuilds every finished cell)"
        )
        return
    click.echo(f"built the overview levels of {len(built)} cell(s) in {store}")
    if chunks:
        levels = ", ".join(f"level {k}: {v}" for k, v in sorted(chunks.items(), key=str))
        click.echo(f"coarse levels rewritten (chunks): {levels}")
