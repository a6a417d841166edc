"""Writes tests/fixtures/csxa: a 2-image dataset in the CSXA on-disk format
(shared/spec/csxa-format.md): datasets-JSON/*.json (LabelMe, shapes in the
file order seen in the real data, mixed shape_type, one duplicate label as in
2548130.json), datasets-PNG/<nested>/*.png (3 identical channels) and a
pixel-size CSV. Run once; the output is committed."""
import json
import os

import numpy as np
from PIL import Image

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "csxa")

# The real 0001035 points from csxa-format.md §6, scaled by 0.25 so the PNG is tiny.
REAL = {
    "C2 bottom left": (260.17159763313606, 344.86982248520707),
    "C2 bottom right": (327.62721893491124, 318.8343195266272),
    "C7 bottom left": (322.301775147929, 791.6153846153845),
    "C7 bottom right": (395.08284023668637, 769.7218934911242),
    "C2 centroid": (287.86131386861314, 273.7226277372263),
    "C3 top left": (266.07142857142856, 364.2857142857143),
    "C3 top right": (328.57142857142856, 337.0824175824176),
    "C3 bottom left": (260.16483516483515, 443.95054945054943),
}


def labels_in_file_order():
    order = list(REAL)
    rest = ["C3 bottom right"]
    for n in range(4, 7):
        rest += ["C%d top left" % n, "C%d top right" % n, "C%d bottom left" % n, "C%d bottom right" % n]
    rest += ["C7 top left", "C7 top right"]
    return order + rest


def point(label):
    if label in REAL:
        x, y = REAL[label]
        return x / 4, y / 4
    # a plausible spine: vertebra n body from y = 90 + (n-3)*22 (quarter scale)
    parts = label.split()
    n = int(parts[0][1])
    top = parts[1] == "top"
    left = parts[2] == "left"
    y = 91 + (n - 3) * 22 + (0 if top else 18) - (6 if not left else 0)
    x = 66 + (n - 3) * 3 + (0 if left else 16)
    return float(x), float(y)


def write(stem, w, h, dup=False, shape_type_point=("C2 bottom left", "C2 bottom right", "C7 bottom left", "C7 bottom right")):
    shapes = []
    for label in labels_in_file_order():
        x, y = point(label)
        shapes.append({"label": label, "points": [[x, y]], "group_id": None,
                       "shape_type": "point" if label in shape_type_point else "polygon", "flags": {}})
    if dup:  # quirk §5.1: C3 top right twice; the later one wins
        shapes.append({"label": "C3 top right ", "points": [[83.0, 84.5]], "group_id": None, "shape_type": "polygon", "flags": {}})
    doc = {"version": "5.2.1", "flags": {}, "shapes": shapes, "imagePath": "..\\datasets-PNG\\%s.png" % stem,
           "imageData": None, "imageHeight": h, "imageWidth": w}
    os.makedirs(os.path.join(HERE, "datasets-JSON"), exist_ok=True)
    with open(os.path.join(HERE, "datasets-JSON", stem + ".json"), "w") as f:
        json.dump(doc, f, indent=1)
    rng = np.random.default_rng(int(stem))
    g = (np.linspace(30, 200, w)[None, :] + rng.integers(0, 20, (h, w))).astype(np.uint8)
    rgb = np.stack([g, g, g], -1)
    d = os.path.join(HERE, "datasets-PNG", "batch1")
    os.makedirs(d, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(os.path.join(d, stem + ".png"))


if __name__ == "__main__":
    write("0001035", 200, 253)
    write("2548130", 180, 240, dup=True)
    with open(os.path.join(HERE, "pixel_size.csv"), "w") as f:
        f.write("Number,Pixel equivalent (mm)\n1,0.92\n2548,4.0\n")
