"""Validation of the trained stages through the Python reference pipeline:
landmark error (mm) and angle MAE, hierarchical vs single stage, per C7
obscuration grade. (The product's own evaluation is `cspine eval`, in Go.)"""
import argparse
import json
import logging
import math
import os
import time

import numpy as np
import torch

from . import datasets, reference
from .models import C7Locator, HeatmapNet

log = logging.getLogger("cspine_train.evaluate")


def load_torch(work):
    from . import config

    st = {name: torch.load(os.path.join(work, name + ".pt"), map_location="cpu") for name in ("global", "c7_locator", "c2", "c7")}

    def w(name):
        return tuple(st[name].get("widths") or config.WIDTHS)

    ms = [HeatmapNet(23, widths=w("global"), out_stride=config.GLOBAL["stride"]), C7Locator(),
          HeatmapNet(3, widths=w("c2"), out_stride=config.C2["stride"]),
          HeatmapNet(4, widths=w("c7"), out_stride=config.C7["stride"], obscuration_classes=3)]
    for m, name in zip(ms, ("global", "c7_locator", "c2", "c7")):
        m.load_state_dict(st[name]["model"])
    return ms


def run(args, out_dir, limit=0):
    ref = reference.Reference.from_torch(*load_torch(args.work))
    truth = {t["file"]: t for t in datasets.read_truth(os.path.join(args.val, "truth.jsonl"))}
    rows = []
    t0 = time.time()
    for s in datasets.load_phantom(args.val, limit=limit or getattr(args, "val_limit", 0)):
        t = truth[s.id]
        sp = t.get("pixel_spacing_mm") or [float("nan")] * 2
        tl = s.landmarks
        ta = reference.angles(tl)
        rec = {"id": s.id, "obscuration": datasets.OBSCURATION[s.obscuration] if s.obscuration >= 0 else "unknown"}
        for mode, hier in (("hierarchical", True), ("single_stage", False)):
            o = ref.run(s.image, s.spacing, hierarchical=hier)
            lm = reference.merged(o)
            err = np.hypot((lm[:, 0] - tl[:, 0]) * sp[1], (lm[:, 1] - tl[:, 1]) * sp[0])
            a = reference.angles(lm)
            rec[mode] = {"lm_err_mm": err.tolist(), **{k: a[k] - ta[k] for k in a}}
            if hier:
                rec["obsc_pred"] = datasets.OBSCURATION[int(np.argmax(o["c7_obscuration"]))]
        rows.append(rec)
    log.info("evaluated %d images in %.0f s", len(rows), time.time() - t0)
    report = summarise(rows)
    with open(os.path.join(args.work, "validation.json"), "w") as f:
        json.dump({"summary": report, "rows": rows}, f)
    print(format_report(report))
    return report


def summarise(rows):
    rep = {}
    for grade in ("none", "partial", "complete", "all"):
        sel = [r for r in rows if grade == "all" or r["obscuration"] == grade]
        if not sel:
            continue
        g = {"n": len(sel)}
        for mode in ("hierarchical", "single_stage"):
            m = {}
            for k in ("c2_slope_deg", "c7_slope_deg", "c2c7_cobb_deg"):
                e = np.abs([r[mode][k] for r in sel])
                m[k + "_mae"] = float(np.mean(e))
                m[k + "_gt5"] = float(np.mean(e > 5))
            le = np.array([r[mode]["lm_err_mm"] for r in sel])
            m["c2_lm_mm"] = float(np.nanmean(le[:, :3]))
            m["c7_lm_mm"] = float(np.nanmean(le[:, 19:]))
            m["all_lm_mm"] = float(np.nanmean(le))
            m["all_lm_p95_mm"] = float(np.nanpercentile(le, 95))
            g[mode] = m
        g["obscuration_accuracy"] = float(np.mean([r["obsc_pred"] == r["obscuration"] for r in sel]))
        rep[grade] = g
    return rep


def format_report(rep):
    lines = ["grade     n  mode          C2slope  C7slope  Cobb   (MAE deg)  C2lm  C7lm  all  p95 (mm)  obsc-acc"]
    for grade, g in rep.items():
        for mode in ("hierarchical", "single_stage"):
            m = g[mode]
            lines.append("%-8s %4d  %-12s  %6.2f  %6.2f  %6.2f            %5.2f %5.2f %5.2f %5.2f     %.2f" % (
                grade, g["n"], mode, m["c2_slope_deg_mae"], m["c7_slope_deg_mae"], m["c2c7_cobb_deg_mae"],
                m["c2_lm_mm"], m["c7_lm_mm"], m["all_lm_mm"], m["all_lm_p95_mm"], g["obscuration_accuracy"]))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--val", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    run(args, None, limit=args.limit)


if __name__ == "__main__":
    main()
