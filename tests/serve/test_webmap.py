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


# --------------------------------------------------------------------------- map controls
VIEW = "9/46.40000/15.95000"


def chromium(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000", "--window-size=900,700", *extra, url,
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def screenshot(url: str, tmp_path: Path, name: str) -> np.ndarray:
    from PIL import Image

    shot = tmp_path / f"{name}.png"
    proc = chromium(url, tmp_path, f"--screenshot={shot}")
    assert shot.is_file(), f"no screenshot; chromium said: {proc.stderr[-2000:]}"
    return np.asarray(Image.open(shot).convert("RGB")).astype(int)


def date_ramp_row(img: np.ndarray) -> int | None:
    """A row of the bottom-right corner holding the viridis ramp: >= 150 px whose green rises
    from dark (< 40) to bright (> 200) without falling back, as nothing but the legend does."""
    h, w, _ = img.shape
    corner = img[h - 160 : h - 10, w - 260 : w - 5]
    for y, row in enumerate(corner):
        g = row[:, 1]
        for x0 in np.flatnonzero(g < 40):
            run = g[x0 : x0 + 210]
            rising = np.diff(run) >= -3
            n = int(np.argmin(rising)) if not rising.all() else len(rising)
            if n >= 150 and run[n] > 200:
                return h - 160 + y
    return None


def scale_bar_box(img: np.ndarray) -> tuple[int, int] | None:
    """(width of the bottom border, height of the left border) of Leaflet's scale line (2 px
    #777 borders, no top) in the bottom-left corner, or None."""
    h, _, _ = img.shape
    grey = np.all(np.abs(img - 0x77) <= 6, axis=-1)
    corner = grey[h - 60 : h, 0:200]
    for y in range(corner.shape[0] - 1, -1, -1):
        xs = np.flatnonzero(corner[y])
        if len(xs) >= 40 and xs[-1] - xs[0] + 1 == len(xs):  # one contiguous line
            left = corner[: y + 1, xs[0]][::-1]
            height = int(np.argmin(left)) if not left.all() else len(left)
            return len(xs), height
    return None


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium missing: apt-get install -y chromium"
)
def test_legend_scale_bar_and_permalink(live, tmp_path: Path) -> None:
    import re

    # the permalink opens the provenance layer at this view: its legend is drawn ...
    img = screenshot(f"{live.url}/#{VIEW}/provenance", tmp_path, "provenance")
    assert date_ramp_row(img) is not None, "no date legend in the bottom-right corner"
    box = scale_bar_box(img)
    assert box is not None, "no scale bar in the bottom-left corner"
    width, height = box
    assert 40 <= width <= 160 and height >= 12, box  # the whole box shows, nothing covers it
    # ... and only there: the true-colour layer has no legend
    plain = screenshot(f"{live.url}/#{VIEW}/true-color", tmp_path, "true-color")
    assert date_ramp_row(plain) is None
    assert scale_bar_box(plain) is not None

    # the DOM after the scripts ran: metric units, the dates, the permalink, the attribution
    proc = chromium(f"{live.url}/#{VIEW}/provenance", tmp_path, "--dump-dom")
    dom = proc.stdout
    (scale,) = re.findall(r'class="leaflet-control-scale-line"[^>]*>([^<]+)<', dom)
    assert re.fullmatch(r"\d+ k?m", scale.strip()), scale
    assert " ft" not in dom and " mi<" not in dom
    info = requests.get(live.url + "/api/info", timeout=30).json()
    legend = dom[dom.index('id="legend"') :]
    assert "Acquisition date" in legend
    assert info["date_range"][0] in legend and info["date_range"][1] in legend
    assert f'id="permalink" href="#{VIEW}/provenance"' in dom
    assert "Copernicus Sentinel" in dom and "leafletjs.com" in dom


# --------------------------------------------------------------------------- super-resolution
SR_VIEW = "13/46.31000/16.02000"


def _texture(img: np.ndarray) -> float:
    """Mean absolute difference of horizontally adjacent pixels in the middle of the map."""
    h, w, _ = img.shape
    mid = img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    return float(np.abs(np.diff(mid, axis=1)).mean())


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium missing: apt-get install -y chromium"
)
def test_switch_between_10m_and_superres(live_sr, tmp_path: Path) -> None:
    """The layer switcher offers the ×4 product next to the 10 m true colour; opening it
    (permalink) loads its own tiles at its native zoom, finer than the 10 m layer's."""
    import re

    dom = chromium(f"{live_sr.url}/#{SR_VIEW}/superres-x4", tmp_path, "--dump-dom").stdout
    labels = re.findall(r"<span> ([^<]+)</span>", dom)
    assert "Super-resolution ×4 (true colour)" in labels and "True colour" in labels
    checked = re.findall(r'<input type="radio"[^>]*checked[^>]*><span> ([^<]+)</span>', dom)
    assert checked == ["Super-resolution ×4 (true colour)"], checked
    tiles = re.findall(r'<img[^>]*src="(?:[^"]*/)?tiles/([^/]+)/(\d+)/[^"]*"[^>]*>', dom)
    assert tiles and set(tiles) == {("superres-x4", "13")}, set(tiles)
    assert 'id="permalink" href="#' + SR_VIEW + '/superres-x4"' in dom

    sr = screenshot(f"{live_sr.url}/#{SR_VIEW}/superres-x4", tmp_path, "sr")
    ten = screenshot(f"{live_sr.url}/#{SR_VIEW}/true-color", tmp_path, "ten")
    for img in (sr, ten):
        imagery = ~np.all(np.abs(img - 0x22) <= 2, axis=-1)
        assert imagery.mean() > 0.5  # the view lies inside both layers' data
    # the product's single-pixel detail shows only when its own tiles are drawn; the 10 m
    # layer at z13 is its z11 tiles enlarged 4x
    assert _texture(sr) > 2 * _texture(ten), (_texture(sr), _texture(ten))
