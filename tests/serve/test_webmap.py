"""The web map page in headless Chromium: the screenshot shows imagery, not a blank page."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests

CHROMIUM = Path("/usr/bin/chromium")


def test_page_assets_are_local(live) -> None:
    html = requests.get(live.url + "/", timeout=30).text
    assert "static/leaflet/leaflet.js" in html and "http" not in html.split("<body>")[1]
    for asset in ("leaflet/leaflet.js", "leaflet/leaflet.css", "leaflet/LICENSE", "map.js"):
        assert requests.get(f"{live.url}/static/{asset}", timeout=30).status_code == 200
    js = requests.get(live.url + "/static/map.js", timeout=30).text
    assert "api/point" in js and "control.layers" in js  # provenance on click, layer switcher


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium missing: apt-get install -y chromium"
)
def test_chromium_screenshot_shows_imagery(live, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "map.png"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
        f"--screenshot={shot}",
        "--window-size=900,700",
        live.url + "/",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), f"no screenshot; chromium said: {proc.stderr[-2000:]}"
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (700, 900)
    # the page background is #222 and the controls are white: imagery is everything else,
    # and real imagery is textured (many distinct colours, spread out)
    bg = np.all(np.abs(img - 0x22) <= 2, axis=-1)
    white = np.all(img >= 245, axis=-1)
    imagery = ~bg & ~white
    assert imagery.mean() > 0.1, f"only {imagery.mean():.2%} of the screenshot is imagery"
    colours = len(np.unique(img[imagery].reshape(-1, 3) // 8, axis=0))
    assert colours > 200 and img[imagery].std() > 10
