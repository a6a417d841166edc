"""ONNX export (opset 17) and the manifest pipeline/stages reads."""
import datetime
import hashlib
import json
import os
import platform
import shutil

import numpy as np
import onnx
import torch
from torch import nn

from . import config, datasets, imaging

OPSET = 17


class _C7Export(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        hm, logits = self.m(x)
        return hm, torch.softmax(logits, dim=1)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _export(model, example, path, input_names, output_names):
    model = model.eval().cpu()
    tmp = path + ".tmp"
    with torch.no_grad():
        torch.onnx.export(model, example, tmp, opset_version=OPSET, input_names=input_names,
                          output_names=output_names, do_constant_folding=True)
    m = onnx.load(tmp)
    onnx.checker.check_model(m)
    os.replace(tmp, path)
    ios = []
    for lst in (m.graph.input, m.graph.output):
        ios.append([{"name": v.name, "shape": [d.dim_value for d in v.type.tensor_type.shape.dim]} for v in lst])
    return ios


def probe_input(shape):
    """Deterministic test input, computed identically by pipeline/stages tests:
    images x[i, j] = 0.5 + 0.4 sin(0.07 i + 0.3) cos(0.05 j); vectors
    v[k] = 0.3 + 0.2 sin(k)."""
    if len(shape) == 4:
        i = np.arange(shape[2], dtype=np.float64)[:, None]
        j = np.arange(shape[3], dtype=np.float64)[None, :]
        x = 0.5 + 0.4 * np.sin(0.07 * i + 0.3) * np.cos(0.05 * j)
        return x.astype(np.float32).reshape(shape)
    k = np.arange(int(np.prod(shape)), dtype=np.float64)
    return (0.3 + 0.2 * np.sin(k)).astype(np.float32).reshape(shape)


def export_check(model, example_shape):
    """PyTorch outputs for the probe input: the Go tests run the exported
    ONNX file on the same input through ONNX Runtime and compare."""
    x = torch.from_numpy(probe_input(example_shape))
    with torch.no_grad():
        out = model.eval().cpu()(x)
    outs = out if isinstance(out, tuple) else (out,)
    res = []
    for o in outs:
        a = o.numpy().astype(np.float64).ravel()
        idx = np.linspace(0, a.size - 1, 16).round().astype(int)
        res.append({"shape": list(o.shape), "sum": float(a.sum()), "max": float(a.max()), "argmax": int(a.argmax()),
                    "sample_index": idx.tolist(), "sample": a[idx].tolist()})
    return res


def load_base(base):
    """A previous model directory (manifest.json, export_check.json and the
    ONNX files) whose stages are kept where this run trains none."""
    with open(os.path.join(base, "manifest.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(base, "export_check.json")) as f:
        checks = json.load(f)["stages"]
    return manifest, checks


def export_all(args, models, n_images, stage_seconds, widths=None):
    """Export the trained stages in models (stage -> torch module; None keeps
    the stage of args.base: its ONNX file is copied byte for byte with its
    manifest entry and export check)."""
    os.makedirs(args.out, exist_ok=True)
    names = datasets.LANDMARK_NAMES
    G, C2, C7 = config.GLOBAL, config.C2, config.C7
    stages = {}
    checks = {}
    base_manifest, base_checks = (load_base(args.base) if getattr(args, "base", None) else (None, None))

    def add(key, fname, model, example, ins, outs, **extra):
        path = os.path.join(args.out, fname)
        if model is None:
            if base_manifest is None:
                raise ValueError("stage %s was not trained and no --base model directory was given" % key)
            entry = base_manifest["stages"][key]
            src = os.path.join(args.base, entry["file"])
            if sha256(src) != entry["sha256"]:
                raise ValueError("%s: sha256 differs from the base manifest" % src)
            if os.path.abspath(src) != os.path.abspath(os.path.join(args.out, entry["file"])):
                shutil.copyfile(src, os.path.join(args.out, entry["file"]))
            stages[key] = entry
            checks[key] = base_checks[key]
            return
        i, o = _export(model, example, path, ins, outs)
        if widths and key in widths:
            extra["widths"] = list(widths[key])
        stages[key] = {"file": fname, "sha256": sha256(path), "bytes": os.path.getsize(path), "inputs": i, "outputs": o, **extra}
        checks[key] = export_check(model, list(example.shape))

    gm, loc, c2m, c7m = models.get("global"), models.get("c7_locator"), models.get("c2"), models.get("c7")

    add("global", "global.onnx", gm, torch.zeros(1, 1, G["input_size"], G["input_size"]), ["image"], ["heatmaps"],
        input_size=G["input_size"], stride=G["stride"], landmarks=names)
    add("c7_locator", "c7_locator.onnx", loc, torch.zeros(1, 57), ["landmarks"], ["region"],
        landmarks=[names[i] for i in datasets.C2C6_IDX], presence_threshold=config.LOCATOR["presence_threshold"])
    add("c2", "c2_refine.onnx", c2m, torch.zeros(1, 1, C2["input_size"], C2["input_size"]), ["image"], ["heatmaps"],
        input_size=C2["input_size"], stride=C2["stride"], side_mm=C2["side_mm"],
        fallback_vertebra_factor=C2["fallback_vertebra_factor"], landmarks=[names[i] for i in datasets.C2_IDX])
    add("c7", "c7_refine.onnx", _C7Export(c7m) if c7m is not None else None, torch.zeros(1, 1, C7["input_size"], C7["input_size"]), ["image"],
        ["heatmaps", "obscuration"], input_size=C7["input_size"], stride=C7["stride"], side_mm=C7["side_mm"],
        fallback_vertebra_factor=C7["fallback_vertebra_factor"], landmarks=[names[i] for i in datasets.C7_IDX],
        obscuration_classes=datasets.OBSCURATION)
    # Kept stages keep their epochs and training times from the base manifest.
    epochs = {"global": args.epochs_global, "c2": args.epochs_c2, "c7": args.epochs_c7}
    stage_seconds = dict(stage_seconds)
    if base_manifest is not None:
        base_training = base_manifest.get("training", {})
        for k in epochs:
            if models.get(k) is None:
                epochs[k] = base_training.get("epochs", {}).get(k, 0)
        for k, v in base_training.get("stage_seconds", {}).items():
            if models.get(k) is None:
                stage_seconds[k] = v
    manifest = {
        "format": "cspine-models/1",
        "name": args.name,
        "version": args.version,
        "clinical_use": "NOT FOR CLINICAL USE: trained on synthetic phantom radiographs only",
        "trained_on": args.trained_on or ("%s dataset %s (%d measurable images)" % (args.format, "+".join(os.path.basename(os.path.normpath(d)) for d in args.data), n_images)),
        "landmarks": names,
        "normalisation": {
            "display": "Modality LUT, then VOI LUT Sequence if present, else first WindowCenter/WindowWidth "
                       "(VOI LUT Function), else automatic window %.1f..%.1f percentile of modality values; "
                       "scaled to [0,1]; MONOCHROME1 inverted (1-v)" % imaging.AUTO_WINDOW_PERCENTILES,
            "input": "float32 [1,1,S,S], display value in [0,1], no mean/std normalisation",
            "letterbox": "centred in a square of side max(rows,cols), pad 0; downscale: mean of source pixels "
                         "binned by floor((i+pad)*S/side); upscale: bilinear; u=(x+0.5+pad_x)*S/side-0.5",
            "crop": "n x n axis-aligned, centre (cx,cy), step (sx,sy) original px per crop px, crop px (i,j) at "
                    "x=cx+(j-(n-1)/2)*sx, y=cy+(i-(n-1)/2)*sy, mean of k x k bilinear subsamples, "
                    "k=clamp(ceil(max(sx,sy)),1,4), outside reads 0; sx=side_mm/n/col_spacing, "
                    "sy=side_mm/n/row_spacing, or sx=sy=fallback_vertebra_factor*V/n with V the median "
                    "C3-C6 endplate width (px) from stage 1",
            "heatmap_decoding": "argmax, per-axis parabola on log values of the peak and neighbours "
                                "(offset clamped to +-0.5), confidence = peak clamped to [0,1]; "
                                "input px = (h+0.5)*stride-0.5",
            "c2_crop_centre": "mean of stage-1 C2_centroid, C2_inf_ant, C2_inf_post",
            "c7_crop_centre": "stage-2 region centre",
            "locator_input": "per C2..C6 landmark (x/S, y/S, present) in letterbox pixels; present = "
                             "confidence >= presence_threshold, else x=y=0",
            "locator_output": "C7 centre x, y and bounding-box w, h of the four C7 corners, letterbox units / S",
        },
        "training": {
            "recipe": "training/ (python3 -m cspine_train.train)",
            "seed": args.seed,  # of this run's trained_stages
            "images": n_images,
            "train_seconds": round(sum(stage_seconds.values()), 1),
            "stage_seconds": stage_seconds,
            "note": args.note,
            "epochs": epochs,
            "trained_stages": sorted(k for k, v in models.items() if v is not None),
            "torch": torch.__version__,
            "onnx_opset": OPSET,
            "host": "%s, %d threads, device %s" % (platform.machine(), args.threads, args.device),
            "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "stages": stages,
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "export_check.json"), "w") as f:
        json.dump({"probe": probe_input.__doc__.split(":", 1)[1].strip(), "stages": checks}, f, indent=1)
        f.write("\n")
    return manifest
