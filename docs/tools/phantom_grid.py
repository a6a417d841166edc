#!/usr/bin/python3
"""Render phantom DICOM files (read with pydicom, an independent reader) and
their truth landmarks into a PNG grid, optionally next to a real radiograph
with its reference points drawn the same way.

usage: phantom_grid.py DIR OUT.png [--n 6] [--real JPG POINTS.json] [--cell 420]
"""
import argparse, json, os
import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
from PIL import Image, ImageDraw, ImageFont

COLORS = {"C2": (255, 80, 80), "C3": (255, 170, 0), "C4": (230, 230, 0), "C5": (80, 220, 80),
          "C6": (0, 200, 255), "C7": (255, 0, 255)}

def display(path):
    ds = pydicom.dcmread(path)
    a = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        a = apply_voi_lut(a, ds, index=0).astype(np.float64)
        lo, hi = a.min(), a.max()
    else:
        lo, hi = np.percentile(a, [1, 99])
    a = np.clip((a - lo) / max(hi - lo, 1e-9), 0, 1)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        a = 1 - a
    return Image.fromarray((a * 255).astype(np.uint8)).convert("RGB"), ds

def draw_points(img, pts, scale, r=4):
    d = ImageDraw.Draw(img)
    for name, (x, y) in pts.items():
        c = COLORS.get(name[:2], (255, 255, 255))
        x, y = x * scale, y * scale
        d.ellipse([x - r, y - r, x + r, y + r], outline=c, width=2)
    # endplate lines of C2 and C7
    for a, b in (("C2_inf_ant", "C2_inf_post"), ("C7_inf_ant", "C7_inf_post")):
        if a in pts and b in pts:
            d.line([tuple(v * scale for v in pts[a]), tuple(v * scale for v in pts[b])], fill=COLORS[a[:2]], width=2)

def cell(img, pts, size, label):
    scale = size / max(img.size)
    im = img.resize((max(1, int(img.size[0] * scale)), max(1, int(img.size[1] * scale))), Image.BILINEAR)
    draw_points(im, pts, scale)
    out = Image.new("RGB", (size, size + 34), (20, 20, 20))
    out.paste(im, ((size - im.size[0]) // 2, 0))
    pts_off = ((size - im.size[0]) // 2)
    d = ImageDraw.Draw(out)
    try:
        font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 13)
    except OSError:
        font = ImageFont.load_default()
    d.text((4, size + 2), label, fill=(255, 255, 255), font=font)
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir"); ap.add_argument("out")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--cell", type=int, default=420)
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--real", nargs=2)
    a = ap.parse_args()
    truths = [json.loads(l) for l in open(os.path.join(a.dir, "truth.jsonl"))]
    cells = []
    if a.real:
        img = Image.open(a.real[0]).convert("RGB")
        pj = json.load(open(a.real[1]))["points_xy_px"]
        names = {"C2_inferior_anterior": "C2_inf_ant", "C2_inferior_posterior": "C2_inf_post",
                 "C7_inferior_anterior": "C7_inf_ant", "C7_inferior_posterior": "C7_inf_post"}
        pts = {names[k]: v for k, v in pj.items()}
        cells.append(cell(img, pts, a.cell, "REAL radiograph (Radiopaedia rID 10338)"))
    for t in truths[: a.n]:
        img, ds = display(os.path.join(a.dir, t["file"]))
        pts = {l["name"]: (l["x"], l["y"]) for l in t.get("landmarks", [])}
        if t.get("measurable"):
            p = t["parameters"]
            label = "%s %s C7:%s Cobb %.1f" % (ds.Modality, ds.PhotometricInterpretation[-1], t["obscuration"], p["c2c7_cobb_deg"])
        else:
            label = "%s negative: %s" % (ds.Modality, t["reason"])
        cells.append(cell(img, pts, a.cell, label))
    cols = min(a.cols, len(cells))
    rows = (len(cells) + cols - 1) // cols
    W, H = cells[0].size
    grid = Image.new("RGB", (cols * W, rows * H), (0, 0, 0))
    for i, c in enumerate(cells):
        grid.paste(c, ((i % cols) * W, (i // cols) * H))
    grid.save(a.out)

if __name__ == "__main__":
    main()
