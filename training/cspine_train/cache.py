"""Preprocessing: decode every image once into compact training arrays.

global:  the letterboxed display image (uint8, S x S) and landmarks in
         letterbox pixels;
c2, c7:  a crop CACHE_FACTOR times the specialist crop side, centred on the
         true C2 / C7 centre, cut from the original grid exactly as the
         pipeline cuts it (imaging.crop), with the landmarks in crop pixels.
"""
import logging
import math
import os
import time

import numpy as np

from . import config, imaging
from .datasets import C2_IDX, C7_IDX, vertebra_size

log = logging.getLogger("cspine_train.cache")


def crop_step(spec, spacing, vsize):
    """Original pixels per crop pixel (sx, sy) for a specialist crop."""
    n = spec["input_size"]
    if spacing:
        return spec["side_mm"] / n / spacing[1], spec["side_mm"] / n / spacing[0]
    s = spec["fallback_vertebra_factor"] * vsize / n
    return s, s


def build(samples, out_path):
    G = config.GLOBAL["input_size"]
    arrays = {k: [] for k in ("g_img", "g_pts", "c2_img", "c2_pts", "c7_img", "c7_pts", "obsc", "step_mm", "ids", "spacing", "shape")}
    t0 = time.time()
    for i, s in enumerate(samples):
        rows, cols = s.image.shape
        lm = s.landmarks
        arrays["g_img"].append(np.round(imaging.letterbox(s.image, G) * 255).astype(np.uint8))
        arrays["g_pts"].append(imaging.to_letterbox(lm, rows, cols, G).astype(np.float32))
        vs = vertebra_size(lm)
        steps = []
        for key, spec, idx in (("c2", config.C2, C2_IDX), ("c7", config.C7, C7_IDX)):
            n = spec["input_size"] * config.CACHE_FACTOR
            ctr = np.nanmean(lm[idx], axis=0)
            if np.isnan(ctr).any() or (not s.spacing and math.isnan(vs)):
                arrays[key + "_img"].append(np.zeros((n, n), np.uint8))
                arrays[key + "_pts"].append(np.full((len(idx), 2), np.nan, np.float32))
                steps.append(float("nan"))
                continue
            sx, sy = crop_step(spec, s.spacing, vs)
            c = imaging.crop(s.image, ctr[0], ctr[1], n, sx, sy)
            arrays[key + "_img"].append(np.round(c * 255).astype(np.uint8))
            arrays[key + "_pts"].append(imaging.to_crop(lm[idx], ctr[0], ctr[1], n, sx, sy).astype(np.float32))
            steps.append(spec["side_mm"] / spec["input_size"] if s.spacing else float("nan"))
        arrays["step_mm"].append(steps)
        arrays["obsc"].append(s.obscuration)
        arrays["ids"].append(s.id)
        arrays["spacing"].append(s.spacing if s.spacing else (float("nan"), float("nan")))
        arrays["shape"].append((rows, cols))
        if (i + 1) % 100 == 0:
            log.info("cached %d images (%.0f s)", i + 1, time.time() - t0)
    if not arrays["ids"]:
        raise ValueError("no usable samples")
    out = {k: np.asarray(v) for k, v in arrays.items()}
    tmp = out_path + ".tmp.npz"
    np.savez(tmp, **out)
    os.replace(tmp, out_path)
    log.info("cache %s: %d images in %.0f s", out_path, len(out["ids"]), time.time() - t0)
    return out


def load(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def main(argv=None):
    import argparse

    from . import datasets

    ap = argparse.ArgumentParser(description="decode a dataset once into a training cache (.npz)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--format", choices=["phantom", "csxa"], default="phantom")
    ap.add_argument("--pixel-sizes")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.format == "phantom":
        samples = datasets.load_phantom(args.data)
    else:
        samples = datasets.load_csxa(args.data, pixel_sizes=args.pixel_sizes)
    build(samples, args.out)


if __name__ == "__main__":
    main()
