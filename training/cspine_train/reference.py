"""Python reference of pipeline/stages Run (hierarchical and single-stage),
used for validation figures and to cross-check the Go implementation."""
import math

import numpy as np
import torch

from . import config, datasets, imaging


def _np(t):
    return t.detach().cpu().numpy()


class Reference:
    """Runs the four stages with either torch modules or ONNX sessions."""

    def __init__(self, global_fn, locator_fn, c2_fn, c7_fn):
        self.global_fn, self.locator_fn, self.c2_fn, self.c7_fn = global_fn, locator_fn, c2_fn, c7_fn

    @classmethod
    def from_torch(cls, gm, loc, c2m, c7m):
        for m in (gm, loc, c2m, c7m):
            m.eval()

        def wrap(m, tup=False):
            def f(x):
                with torch.no_grad():
                    out = m(torch.from_numpy(x))
                if isinstance(out, tuple):
                    return _np(out[0]), _np(torch.softmax(out[1], 1))
                return _np(out)
            return f

        return cls(wrap(gm), wrap(loc), wrap(c2m), wrap(c7m))

    @classmethod
    def from_onnx(cls, model_dir, manifest):
        import onnxruntime as ort  # optional: only when the Python ORT exists

        def sess(key):
            s = ort.InferenceSession("%s/%s" % (model_dir, manifest["stages"][key]["file"]))
            return lambda x: (lambda o: o if len(o) > 1 else o[0])(s.run(None, {s.get_inputs()[0].name: x}))

        return cls(sess("global"), sess("c7_locator"), sess("c2"), sess("c7"))

    def run(self, img, spacing, hierarchical=True):
        rows, cols = img.shape
        G, S = config.GLOBAL, config.GLOBAL["input_size"]
        lb = imaging.letterbox(img, S)
        hm = self.global_fn(lb[None, None].astype(np.float32))[0]
        hp, conf = imaging.decode_heatmap(hm)
        up = (hp + 0.5) * G["stride"] - 0.5
        pts = imaging.from_letterbox(up, rows, cols, S)
        out = {"global": pts, "global_conf": conf}
        if not hierarchical:
            return out
        # stage 2: locator
        present = conf[datasets.C2C6_IDX] >= config.LOCATOR["presence_threshold"]
        present[0] = True  # C2 centroid always passed (as in training)
        feat = np.concatenate([np.where(present[:, None], up[datasets.C2C6_IDX] / S, 0.0), present[:, None].astype(np.float64)], -1)
        reg = self.locator_fn(feat.reshape(1, -1).astype(np.float32))[0].astype(np.float64)
        side, pad_x, pad_y, scale = imaging.letterbox_params(rows, cols, S)
        c = imaging.from_letterbox(reg[:2] * S, rows, cols, S)
        out["c7_region"] = (c[0], c[1], reg[2] * S / scale, reg[3] * S / scale)
        vs = datasets.vertebra_size(pts)
        for key, spec, idx, fn in (("c2", config.C2, datasets.C2_IDX, self.c2_fn), ("c7", config.C7, datasets.C7_IDX, self.c7_fn)):
            n = spec["input_size"]
            if key == "c2":
                cx, cy = pts[idx].mean(0)
            else:
                cx, cy = c[0], c[1]
            if spacing:
                sx, sy = spec["side_mm"] / n / spacing[1], spec["side_mm"] / n / spacing[0]
            else:
                sx = sy = spec["fallback_vertebra_factor"] * vs / n
            cr = imaging.crop(img, cx, cy, n, sx, sy)
            res = fn(cr[None, None].astype(np.float32))
            if isinstance(res, tuple):
                res, prob = res
                out["c7_obscuration"] = prob[0]
            p, cf = imaging.decode_heatmap(res[0])
            u = (p + 0.5) * spec["stride"] - 0.5
            out[key] = np.stack([cx + (u[:, 0] - (n - 1) / 2.0) * sx, cy + (u[:, 1] - (n - 1) / 2.0) * sy], -1)
            out[key + "_conf"] = cf
        return out


def slope(a, p):
    return math.degrees(math.atan2(a[1] - p[1], abs(a[0] - p[0])))


def angles(lm):
    """c2 slope, c7 slope, cobb from 23 landmarks (spec measurements.md)."""
    c2 = slope(lm[1], lm[2])
    c7 = slope(lm[21], lm[22])
    return {"c2_slope_deg": c2, "c7_slope_deg": c7, "c2c7_cobb_deg": c7 - c2}


def merged(out):
    lm = out["global"].copy()
    if "c2" in out:
        lm[datasets.C2_IDX] = out["c2"]
        lm[datasets.C7_IDX] = out["c7"]
    return lm
