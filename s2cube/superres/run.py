"""The super-resolution driver: a store's finished cells, ``scale``× finer, into its SR product.

:func:`superres_store` is to super-resolution what :func:`s2cube.mosaic` is to the mosaic and
uses the same machinery: the writer lease (of the parent, whose tree gains the product, and of
the product), one write task per cell (read the parent cell plus ``halo`` pixels of its
neighbours, run :func:`~s2cube.superres.infer.superres_array`, crop, write through the store's
normal cell write, record last, per-cell overviews), finished cells skipped on a rerun, coarse
overviews once at the end.  The product is the complete store ``<STORE>/superres/x<scale>``
(:mod:`s2cube.store.superres`).

Only cells the parent has finished are processed; a parent cell recorded empty is recorded
empty in the product.  A product cell is redone on a rerun when its record is missing or
damaged (:func:`s2cube.store.finished_cells`), or when the parent cell was rewritten since
(``parent_finished`` in the record differs from the parent's record).

Each cell's task runs the generator on the worker that computes it, by its
:class:`~s2cube.models.runtime.ModelRef` (one instance per worker and device); ``device=
"cuda"`` runs it on the worker's GPU.  The whole product cell is held in memory by its task
(``bands × (n·scale)²`` uint16 plus provenance): at the default 1° cells of 12000 px that is
48000² px, far too much, so super-resolve stores with smaller cells (``--cell-size``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..grid import Cell, GlobalGrid, validate_bbox
from .infer import DEFAULT_TILE, generator_scale, superres_array

__all__ = ["SuperresCell", "SuperresOptions", "superres_cell", "superres_store"]


@dataclass(frozen=True)
class SuperresOptions:
    """The options of a super-resolution run (recorded in every product cell's record)."""

    scale: int = 4
    halo: int | None = None
    tile: int = DEFAULT_TILE
    batch_size: int = 4
    precision: str = "fp32"

    def __post_init__(self) -> None:
        from ..models.runtime import check_precision

        if int(self.scale) < 2:
            raise InputError(f"scale={self.scale}; expected an integer >= 2 (e.g. 4)")
        if self.halo is not None and self.halo < 0:
            raise InputError(f"halo={self.halo} must be >= 0 input pixels")
        if self.tile < 8 or self.batch_size < 1:
            raise InputError(
                f"tile={self.tile} must be >= 8 input pixels and batch_size={self.batch_size} "
                ">= 1; try --tile 128"
            )
        check_precision(self.precision)

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SuperresCell:
    """One write task's work: a parent cell into the product (travels to the worker)."""

    parent: Any  # StoreLocation of the mosaic
    product: Any  # StoreLocation of <parent>/superres/x<scale>
    cell: Cell
    halo: int
    parent_finished: str | None


def superres_cell(
    task: SuperresCell,
    ref: Any,
    options: SuperresOptions,
    *,
    device: str | None,
    record: Mapping[str, Any],
    overviews: bool,
    lease: str | None,
) -> dict[str, Any]:
    """Runs on a worker: read the parent cell + halo, super-resolve, crop, write, overviews."""
    from ..store import store_grid, store_metadata
    from ..store.superres import read_parent_window, write_superres_cell

    t0 = time.perf_counter()
    grid = store_grid(task.parent)
    bands = [str(b) for b in store_metadata(task.parent)["bands"]]
    window = grid.cell_window(task.cell).pad(task.halo)
    arrays = read_parent_window(task.parent, window)
    r_off, c_off = (int(v) for v in arrays.pop("_offset"))
    stack = np.stack([arrays[b] for b in bands])
    sr = superres_array(
        stack,
        ref,
        halo=task.halo,
        tile=options.tile,
        batch_size=options.batch_size,
        device=device,
        precision=options.precision,
    )
    s, n = int(options.scale), grid.cell_pixels
    r0, c0 = task.halo - r_off, task.halo - c_off  # the cell's first pixel in the clipped read
    crop = sr[:, r0 * s : (r0 + n) * s, c0 * s : (c0 + n) * s]
    provenance = {k: v[r0 : r0 + n, c0 : c0 + n] for k, v in arrays.items() if k not in bands}
    t1 = time.perf_counter()
    rec = write_superres_cell(
        task.product,
        task.cell,
        {b: crop[i] for i, b in enumerate(bands)},
        provenance,
        record={
            **record,
            "parent_finished": task.parent_finished,
            "superres_seconds": round(t1 - t0, 3),
        },
        lease=lease,
    )
    if overviews:
        from ..overviews import build_cell_overviews

        build_cell_overviews(task.product, task.cell)
    rec["write_seconds"] = round(time.perf_counter() - t1, 3)
    return rec


def model_label(gen: Any, card: Mapping[str, Any] | None = None) -> str:
    """``name + card version`` of a generator, for the product's ``s2cube_superres.model``
    (a generator without a card: its class, scale and a digest of its weights)."""
    if card and card.get("name"):
        version = card.get("version")
        return f"{card['name']} v{version}" if version is not None else str(card["name"])
    import hashlib

    digest = hashlib.sha1()
    for key, value in sorted(gen.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().numpy().tobytes())
    return f"{type(gen).__name__} x{generator_scale(gen)} (weights {digest.hexdigest()[:12]})"


def generator_from_file(path: str | os.PathLike[str]) -> tuple[Any, dict[str, Any] | None]:
    """A generator and its card from a file: a ``state_dict`` with its card beside it
    (``NAME.pt`` + ``NAME.json`` with ``arch_kwargs``, the shipped layout), or a whole module
    saved with ``torch.save`` (our own files: full unpickling).

    Raises
    ------
    InputError
        If the file is neither (the message says what was found and what is expected).
    """
    import json
    from pathlib import Path

    import torch

    from .nets import Generator

    p = Path(path)
    card_path = p.with_suffix(".json")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"--weights {str(p)!r} could not be read by torch.load ({exc})") from exc
    if isinstance(obj, torch.nn.Module):
        return obj.eval(), None
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    if isinstance(obj, dict) and isinstance(card.get("arch_kwargs"), dict):
        state = obj["state_dict"] if "state_dict" in obj else obj
        gen = Generator(**card["arch_kwargs"])
        gen.load_state_dict({k: v.float() for k, v in state.items()})
        return gen.eval(), card
    raise InputError(
        f"--weights {str(p)!r} holds a {type(obj).__name__}"
        + ("" if card.get("arch_kwargs") else f" without a card {card_path.name!r} (arch_kwargs)")
        + "; expected a generator's state_dict with its card (NAME.pt + NAME.json, as "
        "`s2cube train sr` and the shipped weights write them) or torch.save(generator, path)"
    )


def _parent_cells(
    parent: Any, grid: GlobalGrid, bbox: tuple[float, float, float, float]
) -> tuple[list[Cell], dict[str, dict[str, Any]]]:
    """The parent's finished cells in ``bbox`` and the parent's manifest."""
    from ..store import read_manifest

    manifest = read_manifest(parent)
    cells = [c for c in grid.cells_in_bbox(bbox) if c.name in manifest]
    if not cells:
        done = sorted(manifest)
        extent = "none yet" if not done else f"{len(done)} cell(s): " + _extent(grid, done)
        raise InputError(
            f"bbox={list(bbox)} holds no finished cell of the store {parent.url!r} (finished: "
            f"{extent}); pass a --bbox inside the mosaic, or run `s2cube mosaic` over it first"
        )
    return cells, manifest


def _extent(grid: GlobalGrid, names: Sequence[str]) -> str:
    windows = [grid.cell_window(Cell.from_name(n)) for n in names]
    w = windows[0]
    for other in windows[1:]:
        w = w.union(other)
    west, south, east, north = w.bounds
    return f"lon {west:g}..{east:g}, lat {south:g}..{north:g}"


def superres_store(
    store: str | os.PathLike[str] | Any,
    *,
    bbox: Sequence[float],
    scale: int = 4,
    generator: Any = None,
    card: Mapping[str, Any] | None = None,
    options: SuperresOptions | None = None,
    device: str | None = None,
    overviews: bool = True,
    overwrite: bool = False,
    client: Any = None,
    scheduler: str | None = None,
    progress: Any = False,
    storage_options: Mapping[str, Any] | None = None,
    break_lease: bool = False,
) -> Any:
    """Super-resolve the finished cells of ``store`` in ``bbox`` into ``<store>/superres/x<scale>``.

    Parameters
    ----------
    store
        The mosaic store (local path or URL); it must exist and have finished cells in ``bbox``.
    bbox
        Lon/lat ``(west, south, east, north)``; every finished parent cell it touches is done.
    scale
        Upscaling factor; the generator must upscale by it.
    generator
        The torch generator (default: the shipped weights,
        :func:`s2cube.superres.model.load_generator`).
    card
        The generator's model card (its name and version label the product); the shipped
        weights bring their own.
    options
        Tiling, halo, batch and precision (:class:`SuperresOptions`; its ``scale`` is
        replaced by ``scale``).
    device
        ``"cpu"``, ``"cuda"`` or None (CUDA on workers that have one).
    overviews
        Build the product's overview pyramid (per cell in the tasks, coarse levels at the end).
    overwrite
        Recompute finished product cells (and accept a different model than the product's).
    client, scheduler
        A dask client, or the address of a scheduler (default: dask's local threads).
    progress
        True for a progress bar, or a callback ``(cell name, record)``.
    storage_options
        fsspec options of a store URL.
    break_lease
        Take the leases of a dead run.

    Returns
    -------
    s2cube.execute.MosaicReport
        Cells written, skipped (already finished), empty; ``store`` is the product's URL.

    Examples
    --------
    >>> superres_store("mosaic.zarr", bbox=(15.9, 45.9, 16.1, 46.1), scale=4)  # doctest: +SKIP
    """
    import dask

    from .. import store as zs
    from ..cluster import get_client
    from ..execute import MosaicReport, run_tasks
    from ..models.runtime import ModelRef
    from ..store.superres import create_superres_store, superres_location

    t0 = time.perf_counter()
    bbox_t = validate_bbox(bbox)
    options = SuperresOptions(**{**(options or SuperresOptions()).to_record(), "scale": scale})
    loc = zs.store_location(store, storage_options)
    if loc.is_local and not loc.path.is_absolute():
        loc = zs.store_location(str(loc.path.resolve()))
    if not zs.is_store(loc):
        raise InputError(
            f"{loc.url!r} is not an s2cube store (no mosaic there); pass the path of a store "
            "made by `s2cube mosaic --store ...`"
        )
    grid = zs.store_grid(loc)
    cells, parent_manifest = _parent_cells(loc, grid, bbox_t)
    if generator is None:
        from .model import load_generator, model_card

        card = model_card(scale)  # InputError naming the shipped scales and --weights
        generator = load_generator(scale)
    if generator_scale(generator) != int(scale):
        raise InputError(
            f"scale={scale} but the generator upscales ×{generator_scale(generator)}; pass the "
            f"×{scale} generator or scale={generator_scale(generator)}"
        )
    halo = options.halo if options.halo is not None else _default_halo(generator)
    # one key holds the model: workers fetch it once, not with every cell's task
    ref = dask.delayed(ModelRef.of(generator), pure=True, traverse=False)
    label = model_label(generator, card)
    product = superres_location(loc, scale)
    run_record = {
        "superres": {**options.to_record(), "halo": halo, "device": device},
        "model": label,
        "parent": loc.url,
    }
    parent_lease = zs.Lease(loc, break_lease=break_lease).acquire()
    parent_lease.start()
    try:
        zs.check_store_path(product)
        lease = zs.Lease(product, break_lease=break_lease).acquire()
        lease.start()
        try:
            create_superres_store(loc, scale, model=label, replace_model=overwrite)
            if overviews:
                from ..overviews import prepare_overviews

                prepare_overviews(product)
            done: set[str] = set()
            if not overwrite:
                finished = zs.finished_cells(product, cells)
                product_manifest = zs.read_manifest(product)
                done = {
                    name
                    for name in finished
                    if product_manifest[name].get("parent_finished")
                    == parent_manifest[name].get("finished")
                }
            todo = [c for c in cells if c.name not in done]
            report = MosaicReport(
                store=product.url,
                cells=[c.name for c in cells],
                skipped=[c.name for c in cells if c.name in done],
            )
            tasks = []
            for cell in todo:
                prec = parent_manifest[cell.name]
                rec = {**run_record, "parent_finished": prec.get("finished")}
                if prec.get("empty"):
                    task = dask.delayed(zs.write_empty_cell, pure=False)(
                        product, cell, record=rec, lease=lease.owner
                    )
                else:
                    work = SuperresCell(loc, product, cell, halo, prec.get("finished"))
                    # a GPU run's tasks go to workers that declare a GPU (dask-cuda)
                    gpu = {"resources": {"GPU": 1}} if (device or "").startswith("cuda") else {}
                    with dask.annotate(**gpu):
                        task = dask.delayed(
                            superres_cell, pure=False, name=f"superres-{cell.name}"
                        )(
                            work, ref, options, device=device, record=run_record,
                            overviews=overviews, lease=lease.owner,
                        )  # fmt: skip
                tasks.append((cell, task))
            client = get_client(scheduler, client=client)
            run_tasks(tasks, report, client=client, progress=progress)
            if overviews and todo:
                from ..overviews import build_overviews

                build_overviews(product, coarse=True)
        finally:
            lease.release()
    finally:
        parent_lease.release()
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _default_halo(gen: Any) -> int:
    """The halo a run uses by default: the generator's receptive radius."""
    from .model import context_pixels

    return int(context_pixels(gen))
