"""Writes golden.json: the Python training reference (training/cspine_train/
imaging.py) applied to small deterministic inputs, so the Go resampling and
heatmap decoding are checked against exactly what the models were trained on.
Run: /usr/bin/python3 make_golden.py (the output is committed)."""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "training"))
from cspine_train import imaging  # noqa: E402

rng = np.random.default_rng(7)
cases = {"letterbox": [], "crop": [], "decode": []}
for rows, cols, size in [(53, 37, 16), (40, 90, 32), (20, 20, 8), (10, 7, 24)]:
    img = rng.random((rows, cols)).astype(np.float32)
    out = imaging.letterbox(img, size)
    pts = rng.uniform(-2, max(rows, cols) + 2, (3, 2))
    cases["letterbox"].append({"rows": rows, "cols": cols, "size": size, "pix": img.ravel().tolist(),
                               "out": out.ravel().tolist(), "pts": pts.tolist(),
                               "lb_pts": imaging.to_letterbox(pts, rows, cols, size).tolist()})
img = rng.random((60, 45)).astype(np.float32)
for cx, cy, n, sx, sy in [(20.0, 30.0, 8, 0.7, 0.7), (22.3, 29.1, 10, 2.4, 2.6), (3.0, 55.0, 6, 1.0, 1.3), (40.0, 10.0, 5, 5.5, 5.5)]:
    cases["crop"].append({"rows": 60, "cols": 45, "pix": img.ravel().tolist() if not cases["crop"] else None,
                          "cx": cx, "cy": cy, "n": n, "sx": sx, "sy": sy,
                          "out": imaging.crop(img, cx, cy, n, sx, sy).ravel().tolist()})
h, w = 12, 14
ys, xs = np.mgrid[0:h, 0:w]
hms = []
for c in range(4):
    x0, y0 = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
    g = rng.uniform(0.2, 1.1) * np.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * rng.uniform(1, 2) ** 2))
    g += rng.normal(0, 0.01, g.shape)
    hms.append(g.astype(np.float32))
hm = np.stack(hms)
pts, conf = imaging.decode_heatmap(hm)
cases["decode"].append({"channels": 4, "h": h, "w": w, "hm": hm.ravel().tolist(), "pts": pts.tolist(), "conf": conf.tolist()})
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json"), "w") as f:
    json.dump(cases, f)
