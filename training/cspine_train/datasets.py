"""Dataset loaders: the cspine phantom and the public CSXA format.

Both yield `Sample` records with the display image in [0, 1] on the original
pixel grid, the 23 landmarks in model channel order (NaN where missing),
the pixel spacing in mm (row, col) or None, and C7 obscuration when known.
"""
import csv
import glob
import json
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from . import imaging

log = logging.getLogger("cspine_train.datasets")


def _landmark_names() -> List[str]:
    names = ["C2_centroid", "C2_inf_ant", "C2_inf_post"]
    for n in range(3, 8):
        for c in ("sup_ant", "sup_post", "inf_ant", "inf_post"):
            names.append("C%d_%s" % (n, c))
    return names


# Channel order of every model output (spec measurements.md; Go result.LandmarkNames).
LANDMARK_NAMES = _landmark_names()
C2_IDX = [0, 1, 2]
C7_IDX = [19, 20, 21, 22]
C2C6_IDX = list(range(0, 19))
OBSCURATION = ["none", "partial", "complete"]


@dataclass
class Sample:
    id: str
    image: np.ndarray  # float32 [rows, cols], display image in [0, 1]
    landmarks: np.ndarray  # float64 [23, 2] (x, y) original pixels, NaN if missing
    spacing: Optional[Tuple[float, float]]  # (row, col) mm per pixel, None if unknown
    obscuration: int = -1  # index into OBSCURATION, -1 unknown
    facing: str = ""
    extra: Dict = field(default_factory=dict)


# ---------------------------------------------------------------- phantom


def read_truth(path: str) -> List[dict]:
    out = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError("%s:%d: %s" % (path, lineno, e)) from e
    return out


def load_phantom(root: str, limit: int = 0) -> Iterator[Sample]:
    """Yield the measurable images of a `cspine phantom` directory.

    Negatives ("measurable": false) are skipped: no landmarks to learn from.
    Spacing is taken from the truth only when the DICOM header carries one
    (spacing_source != "none"), because that is what the pipeline will see.
    """
    import pydicom

    truth = read_truth(os.path.join(root, "truth.jsonl"))
    n = 0
    for t in truth:
        if not t.get("measurable", False):
            continue
        path = os.path.join(root, t["file"])
        try:
            ds = pydicom.dcmread(path)
            img = imaging.display_from_dataset(ds)
        except Exception as e:  # a file we cannot decode is reported, not fatal
            log.warning("skip %s: %s", t["file"], e)
            continue
        lm = np.full((23, 2), np.nan)
        for l in t.get("landmarks") or []:
            if l["name"] in LANDMARK_NAMES:
                lm[LANDMARK_NAMES.index(l["name"])] = (l["x"], l["y"])
        sp = None
        ps = t.get("pixel_spacing_mm")
        if ps and len(ps) == 2 and t.get("spacing_source", "none") != "none":
            sp = (float(ps[0]), float(ps[1]))
        ob = OBSCURATION.index(t["obscuration"]) if t.get("obscuration") in OBSCURATION else -1
        yield Sample(id=t["file"], image=img, landmarks=lm, spacing=sp, obscuration=ob,
                     facing=t.get("facing", ""),
                     extra={"c7_hidden_corners": t.get("c7_hidden_corners", 0)})
        n += 1
        if limit and n >= limit:
            return


# ---------------------------------------------------------------- CSXA

# CSXA labels: left = anterior, right = posterior (shared/spec/csxa-format.md §2).
CSXA_LABELS = {"C2 centroid": "C2_centroid", "C2 bottom left": "C2_inf_ant", "C2 bottom right": "C2_inf_post"}
for _n in range(3, 8):
    CSXA_LABELS["C%d top left" % _n] = "C%d_sup_ant" % _n
    CSXA_LABELS["C%d top right" % _n] = "C%d_sup_post" % _n
    CSXA_LABELS["C%d bottom left" % _n] = "C%d_inf_ant" % _n
    CSXA_LABELS["C%d bottom right" % _n] = "C%d_inf_post" % _n


def parse_csxa_json(path: str) -> Tuple[np.ndarray, List[str]]:
    """Return ((23, 2) landmarks with NaN for missing, warnings) of one LabelMe JSON."""
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    shapes = doc.get("shapes")
    if not isinstance(shapes, list):
        raise ValueError("%s: no 'shapes' list" % path)
    warnings = []
    lm = np.full((23, 2), np.nan)
    seen = set()
    for s in shapes:
        label = str(s.get("label", "")).strip()
        if label not in CSXA_LABELS:
            warnings.append("unknown label %r" % label)
            continue
        pts = s.get("points") or []
        if len(pts) < 1 or len(pts[0]) != 2:
            warnings.append("label %r has no point" % label)
            continue
        if label in seen:
            warnings.append("duplicate label %r: keeping the later point" % label)  # quirk §5.1
        seen.add(label)
        lm[LANDMARK_NAMES.index(CSXA_LABELS[label])] = (float(pts[0][0]), float(pts[0][1]))
    for label in CSXA_LABELS:
        if label not in seen:
            warnings.append("missing label %r" % label)
    return lm, warnings


def read_pixel_sizes(path: str) -> Dict[str, float]:
    """Per-image pixel size (mm per pixel) from a CSV with a key column
    ('stem' or 'number') and a size column whose name contains 'pixel' or
    'equivalent'. Keys are case numbers (int(stem[:4])) as strings.
    Values above 1.5 are taken to be pixels per mm and inverted (csxa §3)."""
    out = {}
    with open(path, newline="", encoding="utf-8") as f:
        rd = csv.DictReader(f)
        cols = rd.fieldnames or []
        key = next((c for c in cols if c.strip().lower() in ("stem", "number")), None)
        val = next((c for c in cols if "pixel" in c.lower() or "equivalent" in c.lower()), None)
        if key is None or val is None:
            raise ValueError("%s: need a 'stem' or 'number' column and a pixel-size column, have %s" % (path, cols))
        for row in rd:
            k = row[key].strip()
            if not k or not row[val].strip():
                continue
            v = float(row[val])
            if v > 1.5:
                v = 1.0 / v
            out[csxa_case_key(k)] = v
    return out


def csxa_case_key(k: str) -> str:
    """Join key of CSXA: the 4-digit case number (stem NNNNAAA or a Number)."""
    k = k.strip()
    if k.isdigit():
        return str(int(k[:4])) if len(k) == 7 else str(int(k))
    return k


def load_csxa(root: str, pixel_sizes: Optional[str] = None, limit: int = 0) -> Iterator[Sample]:
    """Yield CSXA images: datasets-JSON/**/*.json paired by stem with
    datasets-PNG/**/<stem>.png (or both in one flat directory)."""
    from PIL import Image

    jdir = os.path.join(root, "datasets-JSON")
    pdir = os.path.join(root, "datasets-PNG")
    if not os.path.isdir(jdir):
        jdir = pdir = root
    pngs = {os.path.splitext(os.path.basename(p))[0]: p for p in glob.glob(os.path.join(pdir, "**", "*.png"), recursive=True)}
    sizes = {}
    if pixel_sizes is None and os.path.exists(os.path.join(root, "pixel_size.csv")):
        pixel_sizes = os.path.join(root, "pixel_size.csv")
    if pixel_sizes:
        sizes = read_pixel_sizes(pixel_sizes)
    n = 0
    for jp in sorted(glob.glob(os.path.join(jdir, "**", "*.json"), recursive=True)):
        stem = os.path.splitext(os.path.basename(jp))[0]
        if stem not in pngs:
            log.warning("%s: no PNG with stem %s", jp, stem)
            continue
        lm, warns = parse_csxa_json(jp)
        for w in warns:
            log.warning("%s: %s", stem, w)
        img = np.asarray(Image.open(pngs[stem]).convert("L"), dtype=np.float32) / 255.0
        rows, cols = img.shape
        left = lm[[1] + [4 * k + 3 for k in range(5)] + [4 * k + 5 for k in range(5)], 0]
        right = lm[[2] + [4 * k + 4 for k in range(5)] + [4 * k + 6 for k in range(5)], 0]
        if np.nanmean(left) > np.nanmean(right):
            log.warning("%s: left points lie right of right points (flipped image?)", stem)
        inside = np.isnan(lm[:, 0]) | ((lm[:, 0] >= -0.5) & (lm[:, 0] <= cols - 0.5) & (lm[:, 1] >= -0.5) & (lm[:, 1] <= rows - 0.5))
        if not inside.all():
            log.warning("%s: %d points outside the image", stem, int((~inside).sum()))
        mm = sizes.get(csxa_case_key(stem))
        sp = (mm, mm) if mm else None
        facing = "left" if np.nanmean(left) <= np.nanmean(right) else "right"
        yield Sample(id=stem, image=img, landmarks=lm, spacing=sp, facing=facing)
        n += 1
        if limit and n >= limit:
            return


def vertebra_size(lm: np.ndarray) -> float:
    """Median endplate width of C3..C6 (pixels): the scale used when the
    pixel spacing is unknown. NaN when none of them is available."""
    w = []
    for n in range(3, 7):
        b = 3 + 4 * (n - 3)
        for a, p in ((b, b + 1), (b + 2, b + 3)):
            d = math.hypot(lm[a, 0] - lm[p, 0], lm[a, 1] - lm[p, 1])
            if not math.isnan(d):
                w.append(d)
    return float(np.median(w)) if w else float("nan")
