"""Gap-filling report on the real 33TWL/33TWM fixture (native 120 m UTM grids, no network).

1. Hide-and-reconstruct: clear pixels of a target date are hidden under the real cloud/shadow
   mask of another date and rebuilt by (a) donors fitted on the ring around each hole
   (:func:`s2cube.fill.fill_from_donors`, donors = the other four dates, all within ±10 days),
   (b) OpenCV Telea, (c) the learned partial-conv inpainter, trained on 33TWM only and
   evaluated on 33TWL only (``--learned-steps 0`` skips it).  RMSE in reflectance against the
   hidden truth, per band and over R/G/B and R/G/B/NIR.
   With each case, the *oracle*: every donor fitted on the hidden pixels themselves (in-sample,
   per band gain/offset, and from all four donor bands), the floor of any single-date donor
   with a linear transfer; and the best *pair* of donors fitted the same way (the floor of
   blending two dates).
2. Holes before/after: a composite of the first 5-day period (2023-08-10..14: two dates) per
   tile, filled from the next periods (rank 1: 08-15..19, rank 2: 08-20..24) by
   :func:`s2cube.fill_holes`, then Telea.
3. Cell edges: the hide-and-reconstruct cases cut into cells of ``--cell`` px, each cell filled
   on its own (``halo`` 0: a hole on a cell edge is cut in pieces fitted apart, what the store
   did before the two-step fill) or with ``halo`` px of its neighbours' observed pixels (what
   the store does: ``donors.fill_task``), against one fill over the whole tile.  Per variant:
   the share of donor-filled pixels that differ from the whole-tile fill, the RMSE against the
   truth, and the *edge step*: the mean absolute difference (reflectance, R/G/B/NIR) between
   neighbouring filled pixels across a cell edge, next to the same between neighbours one
   pixel inside the cells.

4. Never seen: a period that observed nothing (every pixel a hole, no ring to fit to), filled
   from the other four dates: the first donor as it is, the next ones fitted to what the
   earlier ones filled around them.  The step between neighbouring pixels from different
   donors against the step inside one donor, and the RMSE against the hidden date.

    python scripts/fill_report.py [--learned-steps 300] [--json out.json]
    python scripts/fill_report.py --only edges [--cell 183] [--halos 0,22,64]
    python scripts/fill_report.py --only never
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr

from s2cube.fill import fill_from_donors, fill_holes, inpaint
from s2cube.mask import CIRRUS, CLEAR, CLOUD, SHADOW, dilate_disk, scl_to_mask

ROOT = (
    Path(__file__).resolve().parents[2]
    / "shared/data/s2_l2a_earthsearch_33TWL_33TWM_2023-08_120m/sentinel-2-l2a"
)
ASSETS = ("B04", "B03", "B02", "B08")  # red, green, blue, nir
CASES = [(2, 0), (2, 3), (2, 4), (1, 3), (1, 4)]  # (target, cloud mask donor) date indices


def read_tile(tile: str, root: Path = ROOT) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Item ids (by date), ``(t, 4, y, x)`` uint16 DN and ``(t, y, x)`` SCL of one MGRS tile."""
    ids = sorted(
        (p.name for p in root.iterdir() if p.is_dir() and f"_{tile}_" in p.name),
        key=lambda s: s.split("_")[2],
    )
    dn, scl = [], []
    for i in ids:
        bands = []
        for a in ASSETS:
            with rasterio.open(root / i / f"{a}.tif") as src:
                bands.append(src.read(1))
        dn.append(np.stack(bands))
        with rasterio.open(root / i / "SCL.tif") as src:
            scl.append(src.read(1))
    return ids, np.stack(dn), np.stack(scl)


def masks(dn: np.ndarray, scl: np.ndarray, buffer: int = 2) -> tuple[np.ndarray, ...]:
    """(clear as truth, clear for donors: away from cloud by ``buffer``, cloud/shadow/cirrus)."""
    codes = scl_to_mask(scl)
    bad = np.isin(codes, [CLOUD, SHADOW, CIRRUS])
    clear = (codes == CLEAR) & (dn > 0).all(axis=1)
    return clear, clear & ~dilate_disk(bad, buffer), bad


def rmse(pred: np.ndarray, truth: np.ndarray, sel: np.ndarray) -> dict[str, float]:
    e = (pred[:, sel].astype("float64") - truth[:, sel]) / 10000.0
    per = np.sqrt(np.mean(e**2, axis=1))
    return {
        "red": float(per[0]),
        "green": float(per[1]),
        "blue": float(per[2]),
        "nir": float(per[3]),
        "rgb": float(np.sqrt(np.mean(per[:3] ** 2))),
        "rgbn": float(np.sqrt(np.mean(per**2))),
        "n": int(sel.sum()),
    }


def hide_and_reconstruct(tile: str, net=None) -> list[dict]:
    ids, dn, scl = read_tile(tile)
    clear, donor_clear, bad = masks(dn, scl)
    days = np.array([int(i.split("_")[2][-2:]) for i in ids])
    rows = []
    for t, s in CASES:
        hidden = clear[t] & bad[s]
        observed = clear[t] & ~hidden
        comp = np.where(observed, dn[t], 0).astype("uint16")
        others = [d for d in range(len(ids)) if d != t]
        filled, source, fits = fill_from_donors(comp, observed, dn[others], donor_clear[others])
        by_donor = hidden & (source >= 0)
        telea = inpaint(comp, hidden, method="telea")
        row = {
            "tile": tile,
            "target": ids[t],
            "hidden_under": ids[s],
            "hidden_fraction": float(hidden.mean()),
            "donor_coverage": float(by_donor.sum() / hidden.sum()),
            "max_donor_days": int(np.abs(days[others] - days[t]).max()),
            "donor": rmse(filled, dn[t], by_donor),
            "telea_same_pixels": rmse(telea, dn[t], by_donor),
            "telea_all": rmse(telea, dn[t], hidden),
            "fits_accepted": sum(f.accepted for f in fits),
            "fits_rejected_fit_error": sum(f.reason == "fit error" for f in fits),
        }
        if net is not None:
            from s2cube.fill.learned import inpaint_learned

            row["learned_all"] = rmse(inpaint_learned(net, comp, hidden), dn[t], hidden)
        rows.append(row)
    return rows


def oracle(tile: str) -> list[dict]:
    """The floor of single-date donors: each donor fitted on the hidden pixels themselves.

    Per case and donor (clear over ≥ 10 % of the hidden pixels), the RMSE of a gain/offset per
    band and of a linear map from all four donor bands, both least squares on the truth of the
    very pixels they are scored on (no fit from the ring could do better).  Reflectance.
    """
    ids, dn, scl = read_tile(tile)
    clear, donor_clear, bad = masks(dn, scl)
    rows = []
    for t, s in CASES:
        hidden = clear[t] & bad[s]
        for d in (d for d in range(len(ids)) if d != t):
            sel = hidden & donor_clear[d]
            if sel.sum() < 0.1 * hidden.sum():
                continue
            y = dn[t][:, sel].astype("float64").T / 10000.0
            x = dn[d][:, sel].astype("float64").T / 10000.0
            design = np.c_[np.ones(len(x)), x]
            per, cross = [], []
            for b in range(4):
                gain = np.polyfit(x[:, b], y[:, b], 1)
                per.append(np.sqrt(np.mean((np.polyval(gain, x[:, b]) - y[:, b]) ** 2)))
                coef = np.linalg.lstsq(design, y[:, b], rcond=None)[0]
                cross.append(np.sqrt(np.mean((design @ coef - y[:, b]) ** 2)))
            rows.append(
                {
                    "tile": tile,
                    "target": ids[t],
                    "hidden_under": ids[s],
                    "donor": ids[d],
                    "donor_coverage": float(sel.sum() / hidden.sum()),
                    "nir_gain_offset": float(per[3]),
                    "nir_all_bands": float(cross[3]),
                    "rgb_gain_offset": float(np.sqrt(np.mean(np.square(per[:3])))),
                    "rgbn_gain_offset": float(np.sqrt(np.mean(np.square(per)))),
                }
            )
    return rows


def oracle_pairs(tile: str) -> list[dict]:
    """The floor of two-date donors: per case, the best pair of donors fitted in-sample on the
    hidden pixels both see clear (per band ``a + b1·x1 + b2·x2``, least squares on the truth),
    against the equal-weight mean of the two single-donor fits.  Reflectance, R/G/B/NIR."""
    from itertools import combinations

    ids, dn, scl = read_tile(tile)
    clear, donor_clear, bad = masks(dn, scl)
    rows = []
    for t, s in CASES:
        hidden = clear[t] & bad[s]
        best: dict | None = None
        for d1, d2 in combinations([d for d in range(len(ids)) if d != t], 2):
            sel = hidden & donor_clear[d1] & donor_clear[d2]
            if sel.sum() < 0.1 * hidden.sum():
                continue
            y = dn[t][:, sel].astype("float64").T / 10000.0
            x1, x2 = (dn[d][:, sel].astype("float64").T / 10000.0 for d in (d1, d2))
            pair, mean = [], []
            for b in range(4):
                one = np.ones(len(y))
                design = np.c_[one, x1[:, b], x2[:, b]]
                coef = np.linalg.lstsq(design, y[:, b], rcond=None)[0]
                pair.append(np.sqrt(np.mean((design @ coef - y[:, b]) ** 2)))
                fits = [np.polyval(np.polyfit(x[:, b], y[:, b], 1), x[:, b]) for x in (x1, x2)]
                mean.append(np.sqrt(np.mean(((fits[0] + fits[1]) / 2 - y[:, b]) ** 2)))
            row = {
                "tile": tile,
                "target": ids[t],
                "hidden_under": ids[s],
                "donors": [ids[d1], ids[d2]],
                "coverage": float(sel.sum() / hidden.sum()),
                "rgbn_pair_fit": float(np.sqrt(np.mean(np.square(pair)))),
                "rgbn_mean_of_two": float(np.sqrt(np.mean(np.square(mean)))),
                "nir_pair_fit": float(pair[3]),
            }
            if best is None or row["rgbn_pair_fit"] < best["rgbn_pair_fit"]:
                best = row
        if best is not None:
            rows.append(best)
    return rows


def holes_before_after(tile: str) -> dict:
    ids, dn, scl = read_tile(tile)
    clear, _, _ = masks(dn, scl, buffer=0)
    dates = np.array([np.datetime64(f"2023-08-{i.split('_')[2][-2:]}") for i in ids])
    in_period = (dates >= np.datetime64("2023-08-10")) & (dates <= np.datetime64("2023-08-14"))
    comp = np.zeros(dn.shape[1:], "uint16")
    date = np.full(dn.shape[2:], np.datetime64("NaT"), "datetime64[ns]")
    scene = np.full(dn.shape[2:], -1, "int32")
    have = np.zeros(dn.shape[2:], bool)
    for t in np.flatnonzero(in_period)[np.argsort(-clear[in_period].mean(axis=(1, 2)))]:
        take = clear[t] & ~have
        comp[:, take] = dn[t][:, take]
        date[take], scene[take] = dates[t], t
        have |= take
    names = ["red", "green", "blue", "nir"]
    ds = xr.Dataset(
        {n: (("y", "x"), comp[i]) for i, n in enumerate(names)}
        | {"date": (("y", "x"), date), "scene": (("y", "x"), scene)}
    )
    cube = np.concatenate([dn, scl[:, None]], axis=1)[~in_period]
    donors = xr.DataArray(
        cube,
        dims=("time", "band", "y", "x"),
        coords={"time": dates[~in_period], "band": [*names, "scl"]},
    )
    out = fill_holes(
        ds,
        donors,
        scene_index=np.flatnonzero(~in_period),
        period=("2023-08-10", "2023-08-14"),
        max_periods=2,
    )
    stats = dict(out.attrs["fill_stats"])
    fill = out["fill"].values
    stats["every_filled_pixel_flagged"] = bool(
        ((fill == 2) == (~have & (out["scene"].values >= 0))).all()
        and ((fill == 3) == (~have & (out["scene"].values < 0))).all()
    )
    stats["tile"] = tile
    return stats


def _edge_steps(img: np.ndarray, filled: np.ndarray, cell: int) -> tuple[float, float]:
    """Mean |difference| (reflectance, all bands) between horizontal and vertical neighbours
    that are both ``filled``: across a cell edge, and one pixel inside the cells."""
    img = img.astype("float64") / 10000.0
    across, inside = [], []
    for axis in (1, 2):
        n = img.shape[axis]
        for k in range(cell, n, cell):
            for pairs, at in ((across, k), (inside, k + 1)):
                if at >= n:
                    continue
                a = np.take(img, at - 1, axis=axis)
                b = np.take(img, at, axis=axis)
                both = np.take(filled, at - 1, axis=axis - 1) & np.take(filled, at, axis=axis - 1)
                pairs.append(np.abs(a - b)[:, both].mean(axis=0))

    def mean(x: list) -> float:
        x = np.concatenate(x) if x else np.zeros(0)
        return float(x.mean()) if x.size else float("nan")

    return mean(across), mean(inside)


def cell_edges(tile: str, cell: int = 183, halos: tuple[int, ...] = (0, 22, 64)) -> list[dict]:
    """Section 3: each hide-and-reconstruct case filled cell by cell (see the module doc)."""
    ids, dn, scl = read_tile(tile)
    clear, donor_clear, bad = masks(dn, scl)
    rows = []
    ny, nx = clear.shape[1:]
    for t, s in CASES:
        hidden = clear[t] & bad[s]
        observed = clear[t] & ~hidden
        comp = np.where(observed, dn[t], 0).astype("uint16")
        others = [d for d in range(len(ids)) if d != t]
        whole, source, _ = fill_from_donors(comp, observed, dn[others], donor_clear[others])
        by_donor = hidden & (source >= 0)
        row = {"tile": tile, "target": ids[t], "hidden_under": ids[s], "cell": cell,
               "hidden_fraction": float(hidden.mean())}  # fmt: skip
        a, b = _edge_steps(whole, by_donor, cell)
        row["whole"] = {"rmse": rmse(whole, dn[t], by_donor), "edge_step": a, "inside_step": b}
        for halo in halos:
            out = np.zeros_like(comp)
            got = np.zeros_like(observed)
            for y0 in range(0, ny, cell):
                for x0 in range(0, nx, cell):
                    wy = slice(max(y0 - halo, 0), min(y0 + cell + halo, ny))
                    wx = slice(max(x0 - halo, 0), min(x0 + cell + halo, nx))
                    win, src, _ = fill_from_donors(
                        comp[:, wy, wx], observed[wy, wx], dn[others][:, :, wy, wx],
                        donor_clear[others][:, wy, wx],
                    )  # fmt: skip
                    cy = slice(y0 - wy.start, y0 - wy.start + min(cell, ny - y0))
                    cx = slice(x0 - wx.start, x0 - wx.start + min(cell, nx - x0))
                    core = (slice(y0, y0 + cell), slice(x0, x0 + cell))
                    out[(slice(None), *core)] = win[:, cy, cx]
                    got[core] = src[cy, cx] >= 0
            both = by_donor & got & hidden
            a, b = _edge_steps(out, both, cell)
            row[f"halo_{halo}"] = {
                "differ_from_whole": float((out != whole).any(axis=0)[both].mean()),
                "rmse": rmse(out, dn[t], both),
                "edge_step": a,
                "inside_step": b,
                "donor_coverage": float((hidden & got).sum() / hidden.sum()),
            }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def never_seen(tile: str) -> list[dict]:
    """Section 4 (see the module doc), one row per hidden date."""
    ids, dn, scl = read_tile(tile)
    clear, donor_clear, _ = masks(dn, scl)
    img_steps = []
    for t in range(len(ids)):
        others = [d for d in range(len(ids)) if d != t]
        empty = np.zeros_like(dn[t])
        nothing = np.zeros(clear.shape[1:], bool)
        filled, source, fits = fill_from_donors(empty, nothing, dn[others], donor_clear[others])
        img = filled.astype("float64") / 10000.0
        steps: dict[str, list] = {"across": [], "inside": []}
        for axis in (1, 2):
            n = img.shape[axis]
            a, b = np.take(img, range(n - 1), axis=axis), np.take(img, range(1, n), axis=axis)
            sa = np.take(source, range(n - 1), axis=axis - 1)
            sb = np.take(source, range(1, n), axis=axis - 1)
            both = (sa >= 0) & (sb >= 0)
            steps["across"].append(np.abs(a - b)[:, both & (sa != sb)].mean(axis=0))
            steps["inside"].append(np.abs(a - b)[:, both & (sa == sb)].mean(axis=0))
        across = float(np.concatenate(steps["across"]).mean())
        inside = float(np.concatenate(steps["inside"]).mean())
        img_steps.append(
            {
                "tile": tile,
                "hidden": ids[t],
                "donors_used": len(np.unique(source[source >= 0])),
                "chained": sum(f.reason == "fitted to an earlier donor" for f in fits),
                "across_step": across,
                "inside_step": inside,
                "ratio": across / inside,
                "rmse_vs_hidden": rmse(filled, dn[t], clear[t] & (source >= 0)),
            }
        )
    return img_steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--learned-steps", type=int, default=300)
    ap.add_argument("--json")
    ap.add_argument("--only", choices=["edges", "never"], help="only section 3 or 4")
    ap.add_argument("--cell", type=int, default=183)
    ap.add_argument("--halos", default="0,22,64")
    args = ap.parse_args(argv)
    halos = tuple(int(h) for h in args.halos.split(","))
    if args.only:
        if args.only == "edges":
            part = {"cell_edges": cell_edges("33TWL", args.cell, halos)}
            part["cell_edges"] += cell_edges("33TWM", args.cell, halos)
        else:
            part = {"never_seen": never_seen("33TWL") + never_seen("33TWM")}
        text = json.dumps(part, indent=1)
        if args.json:
            Path(args.json).write_text(text)
        print(text)
        return 0
    net = None
    report: dict = {}
    if args.learned_steps > 0:
        import torch

        from s2cube.fill.learned import train_inpainter

        torch.set_num_threads(2)
        _, dn, scl = read_tile("33TWM")
        clear, _, bad = masks(dn, scl)
        t0 = time.time()
        net = train_inpainter(list(dn), list(clear), list(bad), steps=args.learned_steps, seed=0)
        report["learned_training"] = {
            "tile": "33TWM",
            "steps": args.learned_steps,
            "seconds": round(time.time() - t0, 1),
        }
    report["reconstruct"] = hide_and_reconstruct("33TWL", net) + hide_and_reconstruct("33TWM")
    report["oracle"] = oracle("33TWL") + oracle("33TWM")
    report["oracle_pairs"] = oracle_pairs("33TWL") + oracle_pairs("33TWM")
    report["holes"] = [holes_before_after(t) for t in ("33TWL", "33TWM")]
    report["cell_edges"] = cell_edges("33TWL", args.cell, halos) + cell_edges(
        "33TWM", args.cell, halos
    )
    report["never_seen"] = never_seen("33TWL") + never_seen("33TWM")
    text = json.dumps(report, indent=1)
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
