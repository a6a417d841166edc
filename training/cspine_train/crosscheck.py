"""Writes the Python reference outputs (pydicom display + the trained torch
modules through reference.py) for phantom files, so a Go test can check that
pipeline/stages (Go decoder, ONNX Runtime) reproduces what the models were
trained and validated with.

    python3 -m cspine_train.crosscheck --work WORK --data PHANTOMDIR --out FILE.json
"""
import argparse
import json
import os

import numpy as np
import torch

from . import datasets, evaluate, reference


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--limit", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    ref = reference.Reference.from_torch(*evaluate.load_torch(args.work))
    out = []
    for s in datasets.load_phantom(args.data, limit=args.limit):
        o = ref.run(s.image, s.spacing, hierarchical=True)
        out.append({
            "file": s.id,
            "spacing": list(s.spacing) if s.spacing else None,
            "global": o["global"].tolist(), "global_conf": o["global_conf"].tolist(),
            "c7_region": list(o["c7_region"]),
            "c2": o["c2"].tolist(), "c2_conf": o["c2_conf"].tolist(),
            "c7": o["c7"].tolist(), "c7_conf": o["c7_conf"].tolist(),
            "c7_obscuration": np.asarray(o["c7_obscuration"]).tolist(),
        })
    with open(args.out, "w") as f:
        json.dump({"phantom_seed_note": os.path.basename(os.path.normpath(args.data)), "images": out}, f, indent=1)


if __name__ == "__main__":
    main()
