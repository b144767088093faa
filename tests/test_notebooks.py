"""The notebooks run top to bottom (executed with a real Jupyter kernel), offline.

They run in order in one working directory, so 02 makes the fixture store that 03-06 open
(each makes it itself when run alone). ``S2CUBE_OFFLINE=1`` makes 02 take its offline branch
(the real Earth Search items in ../shared/data) without probing the network. Each notebook's
printed facts are checked, not only the absence of errors; the committed copies must carry
their (small) outputs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from realdata import REAL_CATALOG

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

#: what each notebook must print (beyond running without an error)
EXPECTED = {
    "01_quickstart.ipynb": ["EPSG:4326"],
    "02_real_provider.ipynb": ["catalog: the offline fixture", "9 cells written", "EPSG:4326"],
    "03_analyse_store.ipynb": ["NDVI: median", "the store shows the last clear date for"],
    "04_cluster_gpu.ipynb": [
        "workers: 2",
        "same pixels as the single-process store: True",
        "no CUDA GPU visible",  # on a GPU machine the GPU part runs instead (see below)
    ],
    "05_chips_dataloader.ipynb": ["batch: (8, 4, 64, 64) torch.float32"],
    "06_interactive_map.ipynb": ["layers: true-color", "bytes, b'\\x89PNG", "server stopped: True"],
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notebooks")


def text_of(nb) -> str:
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            out.append(o.get("text", "") or o.get("data", {}).get("text/plain", ""))
    return "\n".join(out)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    if path.name != "01_quickstart.ipynb" and not REAL_CATALOG.exists():
        pytest.skip(f"{REAL_CATALOG} is absent")
    monkeypatch.setenv("S2CUBE_OFFLINE", "1")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    t0 = time.monotonic()
    client.execute()
    print(f"{path.name}: {time.monotonic() - t0:.1f} s")
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    text = text_of(nb)
    from s2cube.cluster import cuda_available

    for fact in EXPECTED.get(path.name, []):
        if fact == "no CUDA GPU visible" and cuda_available():
            fact = "cells with the learned mask"
        assert fact in text, f"{path.name} did not print {fact!r}"
    if path.name == "01_quickstart.ipynb":
        assert (workdir / "quickstart.zarr").is_dir()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_has_small_outputs(path: Path) -> None:
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), "commit it executed, top to bottom"
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert outputs and not [o for o in outputs if o["output_type"] == "error"]
    assert path.stat().st_size < 150_000, "outputs too big to read on GitHub"
    assert "application/vnd.jupyter.widget-view+json" not in path.read_text()
