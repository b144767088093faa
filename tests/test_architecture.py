"""The import structure: layers only import downwards (see docs/architecture.md).

Every import is counted, module-level and function-level alike (a lazy import is still a
dependency).  A kernel never imports the driver, the CLI, the server or the tools; the serving
package sits above the compositing core; the test infrastructure is not in the wheel.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "s2cube"

#: layer of each module (longest matching prefix wins); lower layers never import higher ones
LAYERS: dict[str, int] = {
    # 0: foundations (no raster logic)
    "s2cube.errors": 0,
    "s2cube.grid": 0,
    "s2cube.window": 0,
    "s2cube.dates": 0,
    # 1: options and items (values every stage reads)
    "s2cube.config": 1,
    "s2cube.items": 1,
    # 2: kernels (numpy/torch in, numpy/torch out) and their thin xarray wrappers
    "s2cube.mask": 2,
    "s2cube.composite.kernels": 2,
    "s2cube.composite.order": 2,
    "s2cube.harmonize": 2,
    "s2cube.render": 2,
    "s2cube.render_metrics": 2,
    "s2cube.fill": 2,
    "s2cube.models": 2,
    "s2cube.landcover": 2,
    "s2cube.landcover.run": 5,  # the land-cover driver (store, catalog, cells)
    "s2cube.landcover.run_scenes": 5,  # its scenes source (catalog scenes, pruned, fused)
    "s2cube.landcover.run_mosaic": 5,  # its mosaic source (the store's own mosaic)
    "s2cube.superres": 2,  # SR networks, weights, kernels (issue 13)
    "s2cube.superres.infer": 2,  # the SR kernel (numpy/torch)
    "s2cube.superres.wrapper": 4,  # xarray/dask over the SR kernel (map_blocks with halo)
    "s2cube.superres.run": 5,  # the super-resolution driver (product store, cells)
    "s2cube.landcover.train_cli": 6,  # `s2cube train landcover` (reads label files)
    "s2cube.overviews.pyramid": 2,
    "s2cube.testing": 2,
    # 3: the I/O edge (rasters, catalogs, the store)
    "s2cube.reader": 3,
    "s2cube.search": 3,
    "s2cube.cube": 3,
    "s2cube.plan": 3,
    "s2cube.store": 3,
    "s2cube.overviews": 3,
    "s2cube.chips": 3,
    "s2cube.quicklook": 3,
    "s2cube.export": 3,
    "s2cube.models.cli": 6,
    # 4: engines (dask graphs over the kernels and the I/O edge)
    "s2cube.composite": 4,
    "s2cube.composite.engine": 4,
    "s2cube.composite.wrapper": 4,
    "s2cube.planner": 4,
    # 5: driver (wiring), execution, cluster
    "s2cube.execute": 5,
    "s2cube.driver": 5,
    "s2cube.donors": 5,  # fill wiring of a mosaic run (donor search, fill jobs)
    "s2cube.cluster": 5,
    "s2cube.demo": 5,
    "s2cube": 5,  # the public API re-exports everything below the apps
    # 6: applications: command line, server, tools
    "s2cube.cli": 6,
    "s2cube.serve": 6,
    "s2cube.tools": 6,
    "s2cube.chips.cli": 6,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def _imports(path: Path) -> set[str]:
    """Every s2cube module ``path`` imports (absolute or relative, at any depth)."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for stmt in block.body
        for n in ast.walk(stmt)
    }
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue  # annotations only: not a runtime dependency
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "s2cube"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "s2cube":
                continue
            for alias in node.names:
                # ``from . import render`` imports a module, ``from .x import f`` a name in x
                sub = f"{target}.{alias.name}"
                out.add(sub if _is_module(sub) else target)
    return out


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").exists() or (PACKAGE.parent / rel).is_dir()


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in MODULES:
        _layer(_module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_only_go_down(path):
    me = _module_name(path)
    mine = _layer(me)
    up = sorted(
        f"{target} (layer {_layer(target)})"
        for target in _imports(path)
        if _layer(target) > mine and not target.startswith(me + ".")
    )
    assert not up, f"{me} (layer {mine}) imports upwards: {up}"


def test_the_test_server_is_not_in_the_wheel():
    assert not (PACKAGE / "testing" / "stac_api.py").exists()
    for path in MODULES:
        assert "pypgstac" not in path.read_text(), path


#: modules whose functions run inside dask tasks (kernels, the reader, engines)
TASK_SIDE = (
    "s2cube.mask",
    "s2cube.composite",
    "s2cube.harmonize",
    "s2cube.plan",
    "s2cube.reader",
    "s2cube.cube",
    "s2cube.models",
    "s2cube.overviews.build",
    "s2cube.overviews.kernels",
)


def _warning_calls(path: Path) -> list[str]:
    """``warnings.<filter function>(...)`` calls in a module (source text of each)."""
    names = {"catch_warnings", "filterwarnings", "simplefilter", "resetwarnings"}
    return [
        ast.unparse(node)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in names
    ]


def test_no_warning_filters_inside_tasks():
    """Warning filters are process-global: inside a (threaded) task they are not thread-safe and
    can hide read failures.  Task-side modules set none; nothing silences warnings wholesale."""
    for path in MODULES:
        name, calls = _module_name(path), _warning_calls(path)
        assert "warnings.simplefilter('ignore')" not in calls, name
        if name.startswith(TASK_SIDE):
            assert not calls, (name, calls)


@pytest.mark.parametrize(
    "module",
    ["s2cube.grid", "s2cube.window", "s2cube.config", "s2cube.cluster"],
)
def test_docstring_examples_run(module):
    """The examples in the docstrings of the value modules are true."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
