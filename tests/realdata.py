"""Where the real test data lives (../shared/data beside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("S2CUBE_SHARED_DATA", REPO.parent / "shared" / "data"))
REAL_CATALOG = SHARED_DATA / "s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m" / "catalog.json"
#: area of the real two-tile fixture (33TWL + 33TWM, 120 m)
REAL_BBOX = (15.3, 45.9, 16.6, 46.9)
