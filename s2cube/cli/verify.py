"""``s2cube verify STORE``: re-read every finished cell against its checksums and its record.

Registered in :mod:`s2cube.cli.lazy`; :func:`s2cube.store.verify_store` does the work.  Exit
status 0 when every cell checks out, 1 when anything differs (each finding names the cell, the
variable and the fix), 2 for a bad argument (not a store).  ``--repair`` forgets the records
of the damaged cells, under the writer lease, so the next run with the same arguments
recomputes exactly them.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from . import _storage_option

__all__ = ["verify"]


def _table(report: Any, indent: str = "") -> list[str]:
    """One line per checked cell (product, cell, state, findings)."""
    by_cell: dict[str, list[Any]] = {}
    for f in report.findings:
        by_cell.setdefault(f"{f.product}/{f.cell}", []).append(f)
    lines = [f"{indent}{'product':<10} {'cell':<14} {'state':<5} findings"]
    keys = list(report.cells) + [k for k in by_cell if k not in report.cells]
    for key in keys:
        product, cell = key.split("/", 1)
        found = by_cell.get(key, [])
        state = "bad" if found else "ok"
        first = found[0].describe().split(": ", 1)[-1] if found else ""
        lines.append(f"{indent}{product:<10} {cell:<14} {state:<5} {len(found) or ''} {first}")
    return lines


@click.command("verify")
@click.argument("store")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--repair",
    is_flag=True,
    help="Forget the records of damaged cells (under the writer lease), so that rerunning the "
    "same `s2cube mosaic` / `s2cube landcover` command recomputes exactly them.",
)
@click.option(
    "--no-overviews", is_flag=True, help="Skip the overview levels (level 0 and records only)."
)
@click.option("--cell", "cells", multiple=True, help="Check only this mosaic cell (repeat).")
@click.option("--break-lease", is_flag=True, help="With --repair: take the lease of a dead run.")
@_storage_option
def verify(
    store: str,
    as_json: bool,
    repair: bool,
    no_overviews: bool,
    cells: tuple[str, ...],
    break_lease: bool,
    storage_option: tuple[str, ...],
) -> None:
    """Re-read every finished cell of STORE against its checksums and its manifest record.

    Exit status 1 names each damaged cell and variable; rerun the mosaic with --overwrite for
    those cells, or `s2cube verify --repair` and rerun it to recompute them.
    """
    from ..grid import Cell
    from ..store import forget_cells, parse_storage_options, verify_store

    for name in cells:
        Cell.from_name(name)  # a bad name exits 2 with the expected form
    report = verify_store(
        store,
        cells=cells or None,
        overviews=not no_overviews,
        storage_options=parse_storage_options(storage_option),
    )
    forgotten: dict[str, list[str]] = {}
    if repair and not report.ok:
        forgotten = forget_cells(store, report, break_lease=break_lease)
    if as_json:
        out = report.to_dict()
        if repair:
            out["forgotten"] = forgotten
        click.echo(json.dumps(out, indent=1, default=str))
    else:
        click.echo(f"store      {report.store}")
        click.echo(
            f"checksums  {report.checksums} "
            + {
                "all": "(crc32c on every chunk: corrupt chunks fail to read)",
                "none": "(a store from before chunk checksums: only the records can catch damage)",
                "partial": "(some arrays from before chunk checksums)",
            }[report.checksums]
        )
        for line in _table(report):
            click.echo(line)
        for path, sub in report.nested.items():
            click.echo(f"nested store {path} (checksums {sub.checksums}):")
            for line in _table(sub, "  "):
                click.echo(line)
        for skipped in report.skipped:
            click.echo(f"skipped    {skipped}")
        findings = [*report.findings, *(f for s in report.nested.values() for f in s.findings)]
        n_cells = len(report.cells) + sum(len(s.cells) for s in report.nested.values())
        if report.ok:
            click.echo(f"ok: {n_cells} finished cell(s) match their checksums and records")
        else:
            click.echo(f"{len(findings)} problem(s):", err=True)
            for f in findings:
                click.echo(f"  {f.describe()}", err=True)
            if any(f.level or f.variable == "(overviews)" for f in findings):
                click.echo(
                    "overview levels: `s2cube overviews STORE --force` rebuilds them from the "
                    "cells (enough when level 0 checks out)",
                    err=True,
                )
            if forgotten:
                total = sum(len(v) for v in forgotten.values())
                click.echo(
                    f"forgot the records of {total} cell(s); rerun the same command that made "
                    "the store (`s2cube mosaic ...` / `s2cube landcover ...`) to recompute them",
                    err=True,
                )
            else:
                click.echo(
                    "fix: rerun the command that made the store with --overwrite for these "
                    "cells (a bbox covering them), or run `s2cube verify --repair STORE` and "
                    "rerun it unchanged to recompute exactly them",
                    err=True,
                )
    sys.exit(0 if report.ok else 1)
