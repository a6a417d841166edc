"""Batched geometric and intensity augmentation (torch, CPU).

Geometry: an affine map per sample from output pixels to source pixels,
applied with grid_sample; landmarks follow through the inverse map.
Horizontal flips turn a left-facing patient into a right-facing one; the
anatomical labels (anterior/posterior) do not change, so no channel is
swapped (image-left/right labels such as CSXA's are converted to anatomical
ones by the loader before this point).

Intensity: window (contrast/brightness), gamma, blur, noise, occlusion
boxes and collimation borders: what the phantom varies and what real films
add (burn-in text and markers, different processing curves, grids, noise).
"""
import math

import numpy as np
import torch
import torch.nn.functional as F


def affine_params(rng, n, out_size, src_size, center_src, scale_rng, rot_deg, shift_px, flip_p):
    """Matrices A (n, 2, 3): src = A @ [u, v, 1] for output pixel (u, v).

    out pixel centre (out_size-1)/2 maps to center_src[i] + shift; each
    output pixel spans `base_step * s` source pixels.
    """
    A = np.zeros((n, 2, 3))
    for i in range(n):
        s = math.exp(rng.uniform(math.log(scale_rng[0]), math.log(scale_rng[1])))
        th = math.radians(rng.uniform(-rot_deg, rot_deg))
        fl = -1.0 if rng.random() < flip_p else 1.0
        c, sn = math.cos(th) * s, math.sin(th) * s
        M = np.array([[c * fl, -sn], [sn * fl, c]]) * (src_size / out_size)
        sh = rng.normal(0.0, 1.0, 2) * shift_px[0]
        sh = np.clip(sh, -shift_px[1], shift_px[1])
        ctr = np.asarray(center_src[i], np.float64) + sh
        oc = (out_size - 1) / 2.0
        A[i, :, :2] = M
        A[i, :, 2] = ctr - M @ np.array([oc, oc])
    return A


def warp(src, A, out_size):
    """src [n, 1, H, W] float; A (n, 2, 3) numpy. Returns [n, 1, out, out]."""
    n, _, H, W = src.shape
    u = torch.arange(out_size, dtype=torch.float32)
    vv, uu = torch.meshgrid(u, u, indexing="ij")
    ones = torch.ones_like(uu)
    P = torch.stack([uu, vv, ones], -1).reshape(-1, 3)  # (out*out, 3)
    At = torch.from_numpy(A).float()
    S = torch.einsum("nij,pj->npi", At, P)  # source pixel coords
    gx = (S[..., 0] + 0.5) / W * 2 - 1
    gy = (S[..., 1] + 0.5) / H * 2 - 1
    grid = torch.stack([gx, gy], -1).reshape(n, out_size, out_size, 2)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def warp_points(pts, A):
    """pts (n, k, 2) source pixels -> output pixels via inverse of A."""
    out = np.empty_like(pts, dtype=np.float64)
    for i in range(len(A)):
        M = A[i, :, :2]
        t = A[i, :, 2]
        out[i] = (np.linalg.inv(M) @ (pts[i] - t).T).T
    return out


def _gauss_kernel(sigma):
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def intensity(x, rng, strength=1.0):
    """x [n, 1, H, W] in [0, 1]; returns augmented copy in [0, 1]."""
    n, _, H, W = x.shape
    out = []
    for i in range(n):
        y = x[i : i + 1]
        # window / contrast
        if rng.random() < 0.8:
            lo = rng.uniform(-0.15, 0.25) * strength
            hi = 1.0 + rng.uniform(-0.25, 0.15) * strength
            y = ((y - lo) / max(hi - lo, 0.2)).clamp(0, 1)
        if rng.random() < 0.8:
            g = math.exp(rng.uniform(-0.5, 0.5) * strength)
            y = y.clamp(min=1e-6) ** g
        if rng.random() < 0.3:
            k = _gauss_kernel(rng.uniform(0.4, 1.6))
            r = (len(k) - 1) // 2
            y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
            y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
        if rng.random() < 0.2:  # unsharp masking, as CR/DR processing does
            k = _gauss_kernel(rng.uniform(1.5, 4.0))
            r = (len(k) - 1) // 2
            b = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
            b = F.conv2d(F.pad(b, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
            y = (y + rng.uniform(0.3, 1.0) * (y - b)).clamp(0, 1)
        y = y.clone()
        if rng.random() < 0.5:  # occlusion: text, markers, rulers, shoulders, hardware
            for _ in range(rng.integers(1, 4)):
                h = int(rng.uniform(0.03, 0.25) * H)
                w = int(rng.uniform(0.03, 0.25) * W)
                r0 = int(rng.integers(0, max(1, H - h)))
                c0 = int(rng.integers(0, max(1, W - w)))
                v = rng.uniform(0, 1)
                if rng.random() < 0.5:
                    y[..., r0 : r0 + h, c0 : c0 + w] = v
                else:  # translucent overlay
                    a = rng.uniform(0.2, 0.7)
                    y[..., r0 : r0 + h, c0 : c0 + w] = (1 - a) * y[..., r0 : r0 + h, c0 : c0 + w] + a * v
        if rng.random() < 0.2:  # collimation border
            side = rng.integers(0, 4)
            m = int(rng.uniform(0.02, 0.15) * H)
            v = rng.uniform(0, 0.2)
            if side == 0:
                y[..., :m, :] = v
            elif side == 1:
                y[..., -m:, :] = v
            elif side == 2:
                y[..., :, :m] = v
            else:
                y[..., :, -m:] = v
        if rng.random() < 0.7:
            y = y + torch.from_numpy(rng.normal(0, rng.uniform(0, 0.04) * strength, y.shape).astype(np.float32))
        out.append(y.clamp(0, 1))
    return torch.cat(out, 0)


def heatmaps(pts, size, stride, sigma):
    """Gaussian targets. pts (n, k, 2) input pixels (NaN = missing).
    Returns targets [n, k, h, h] and mask [n, k] (0 for missing)."""
    h = size // stride
    n, k, _ = pts.shape
    hp = (pts + 0.5) / stride - 0.5
    ax = torch.arange(h, dtype=torch.float32)
    P = torch.from_numpy(np.nan_to_num(hp, nan=-1e4)).float()
    gx = torch.exp(-0.5 * ((ax.view(1, 1, -1) - P[..., 0:1]) / sigma) ** 2)
    gy = torch.exp(-0.5 * ((ax.view(1, 1, -1) - P[..., 1:2]) / sigma) ** 2)
    t = gy.unsqueeze(-1) * gx.unsqueeze(-2)
    mask = torch.from_numpy((~np.isnan(pts).any(-1)).astype(np.float32))
    return t, mask
