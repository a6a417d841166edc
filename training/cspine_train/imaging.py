"""Display-image normalisation and the geometric resampling shared with Go.

Everything here mirrors pipeline/stages (Go) exactly; the manifest records
the same definitions so the two stay in step:

- display image: Modality LUT, then VOI (VOI LUT Sequence if present, else
  the first WindowCenter/WindowWidth with the VOI LUT Function, else an
  automatic window from the 0.5th..99.5th percentile of the modality
  values), scaled to [0, 1]; MONOCHROME1 inverted (1 - v) so bone is bright.
- letterbox: the image is centred in a square of side max(rows, cols),
  padded with 0, and reduced to S x S by averaging every source pixel into
  the output cell that contains its centre (box filter); when the square is
  smaller than S (upscaling) bilinear sampling is used instead. A point maps
  as u = (x + 0.5 + pad_x) * S / side - 0.5.
- crops: an axis-aligned window of n x n pixels centred on (cx, cy) with a
  step of (sx, sy) original pixels per crop pixel, each crop pixel the mean
  of k x k bilinear samples (k = clamp(ceil(max(sx, sy)), 1, 4)) spread
  evenly over its footprint; outside the image samples read 0.
"""
import math

import numpy as np

AUTO_WINDOW_PERCENTILES = (0.5, 99.5)


def display_from_dataset(ds):
    """Return the display image in [0, 1] (float32, rows x cols) of a pydicom dataset."""
    from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut

    arr = ds.pixel_array
    if arr.ndim == 3 and getattr(ds, "SamplesPerPixel", 1) == 1:
        arr = arr[0]  # first frame of a multi-frame object
    if arr.ndim != 2:
        raise ValueError("unsupported pixel array shape %s" % (arr.shape,))
    mod = apply_modality_lut(arr, ds).astype(np.float64)
    has_voi_seq = "VOILUTSequence" in ds and len(ds.VOILUTSequence) > 0
    has_window = "WindowCenter" in ds and "WindowWidth" in ds
    if has_voi_seq:
        out = apply_voi_lut(mod, ds, index=0, prefer_lut=True).astype(np.float64)
        desc = ds.VOILUTSequence[0].LUTDescriptor
        nbits = int(desc[2])
        out = out / float((1 << nbits) - 1)
    elif has_window:
        out = apply_voi_lut(mod, ds, index=0, prefer_lut=False).astype(np.float64)
        lo, hi = window_output_range(ds)
        out = (out - lo) / (hi - lo)
    else:
        out = auto_window(mod)
    out = np.clip(out, 0.0, 1.0)
    if str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        out = 1.0 - out
    return out.astype(np.float32)


def window_output_range(ds):
    """The output range pydicom 2.x maps a VOI window onto: the stored-value
    range (or the Modality LUT's), passed through the Rescale Slope and
    Intercept when the data set has them. Dividing by anything else shifts
    and clips the display of every file with a rescale (signed CR with
    intercept 32768 came out half saturated before this was fixed)."""
    if ds.get("ModalityLUTSequence"):
        lo, hi = 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    elif int(getattr(ds, "PixelRepresentation", 0)) == 0:
        lo, hi = 0.0, float(2 ** int(ds.BitsStored) - 1)
    else:
        bits = int(ds.BitsStored)
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = ds.get("RescaleSlope", None), ds.get("RescaleIntercept", None)
    if slope is not None and intercept is not None:
        lo, hi = lo * float(slope) + float(intercept), hi * float(slope) + float(intercept)
    return lo, hi


def auto_window(mod):
    lo, hi = np.percentile(mod, AUTO_WINDOW_PERCENTILES)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((mod - lo) / (hi - lo), 0.0, 1.0)


def letterbox_params(rows, cols, size):
    side = max(rows, cols)
    pad_x = (side - cols) / 2.0
    pad_y = (side - rows) / 2.0
    return side, pad_x, pad_y, size / float(side)


def letterbox(img, size):
    """Letterbox a float32 image (rows x cols) to size x size (see module doc)."""
    rows, cols = img.shape
    side, pad_x, pad_y, scale = letterbox_params(rows, cols, size)
    if scale > 1.0:
        # upscaling: bilinear sampling at the output cell centres
        u = np.arange(size, dtype=np.float64)
        xs = (u + 0.5) / scale - 0.5 - pad_x
        ys = (u + 0.5) / scale - 0.5 - pad_y
        gx, gy = np.meshgrid(xs, ys)
        return bilinear(img, gx, gy).astype(np.float32)
    cidx = np.floor((np.arange(cols) + pad_x) * scale).astype(np.int64)
    ridx = np.floor((np.arange(rows) + pad_y) * scale).astype(np.int64)
    cidx = np.clip(cidx, 0, size - 1)
    ridx = np.clip(ridx, 0, size - 1)
    # indices are monotonic: sum runs of equal bins with reduceat (float64)
    a = img.astype(np.float64)
    cb, cstart, ccount = np.unique(cidx, return_index=True, return_counts=True)
    rb, rstart, rcount = np.unique(ridx, return_index=True, return_counts=True)
    colsum = np.add.reduceat(a, cstart, axis=1)
    blk = np.add.reduceat(colsum, rstart, axis=0)
    res = np.zeros((size, size), np.float64)
    res[np.ix_(rb, cb)] = blk / np.outer(rcount, ccount)
    return res.astype(np.float32)


def to_letterbox(pts, rows, cols, size):
    side, pad_x, pad_y, scale = letterbox_params(rows, cols, size)
    pts = np.asarray(pts, np.float64)
    out = np.empty_like(pts)
    out[..., 0] = (pts[..., 0] + 0.5 + pad_x) * scale - 0.5
    out[..., 1] = (pts[..., 1] + 0.5 + pad_y) * scale - 0.5
    return out


def from_letterbox(pts, rows, cols, size):
    side, pad_x, pad_y, scale = letterbox_params(rows, cols, size)
    pts = np.asarray(pts, np.float64)
    out = np.empty_like(pts)
    out[..., 0] = (pts[..., 0] + 0.5) / scale - 0.5 - pad_x
    out[..., 1] = (pts[..., 1] + 0.5) / scale - 0.5 - pad_y
    return out


def bilinear(img, x, y):
    """Bilinear samples of img at float coordinates; 0 outside the image."""
    rows, cols = img.shape
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx = x - x0
    fy = y - y0
    out = np.zeros(x.shape, np.float64)
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            xi = x0 + dx
            yi = y0 + dy
            ok = (xi >= 0) & (xi < cols) & (yi >= 0) & (yi < rows)
            v = np.zeros(x.shape, np.float64)
            v[ok] = img[yi[ok], xi[ok]]
            out += wx * wy * v
    return out


def supersample_factor(sx, sy):
    return int(min(4, max(1, math.ceil(max(sx, sy) - 1e-9))))


def crop(img, cx, cy, n, sx, sy):
    """n x n crop centred on (cx, cy), sx/sy original pixels per crop pixel."""
    k = supersample_factor(sx, sy)
    j = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    acc = np.zeros((n, n), np.float64)
    for a in range(k):
        oy = (a + 0.5) / k - 0.5
        for b in range(k):
            ox = (b + 0.5) / k - 0.5
            gx, gy = np.meshgrid(cx + (j + ox) * sx, cy + (j + oy) * sy)
            acc += bilinear(img, gx, gy)
    return (acc / (k * k)).astype(np.float32)


def to_crop(pts, cx, cy, n, sx, sy):
    pts = np.asarray(pts, np.float64)
    out = np.empty_like(pts)
    out[..., 0] = (pts[..., 0] - cx) / sx + (n - 1) / 2.0
    out[..., 1] = (pts[..., 1] - cy) / sy + (n - 1) / 2.0
    return out


def decode_heatmap(hm):
    """Argmax with sub-pixel refinement, as pipeline/stages does it.

    hm: [C, H, W]. Returns (pts [C, 2] in heatmap pixels (x, y), conf [C]).
    Refinement: along each axis a parabola through the log of the peak and
    its two neighbours (exact for a Gaussian peak), offset clamped to
    +-0.5; confidence = peak value clamped to [0, 1].
    """
    c, h, w = hm.shape
    pts = np.zeros((c, 2), np.float64)
    conf = np.zeros(c, np.float64)
    for i in range(c):
        m = hm[i]
        idx = int(np.argmax(m))
        py, px = divmod(idx, w)
        peak = float(m[py, px])
        conf[i] = min(1.0, max(0.0, peak))
        pts[i] = (px + _refine(m, px, py, 1, 0, w), py + _refine(m, px, py, 0, 1, h))
    return pts, conf


def _refine(m, px, py, dx, dy, n):
    p = px if dx else py
    if p <= 0 or p >= n - 1:
        return 0.0
    eps = 1e-6
    a = math.log(max(float(m[py - dy, px - dx]), eps))
    b = math.log(max(float(m[py, px]), eps))
    c = math.log(max(float(m[py + dy, px + dx]), eps))
    den = a - 2.0 * b + c
    if den >= 0:
        return 0.0
    off = 0.5 * (a - c) / den
    return max(-0.5, min(0.5, off))
