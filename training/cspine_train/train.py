"""Train the four stages and export them with their manifest.

    /usr/bin/python3 -m cspine_train.train --data DIR [--format phantom|csxa] \
        --work /tmp/cspine-train --out ../refmodels [--val DIR]

Resumable: every stage checkpoints after each epoch into --work and a
killed run continues where it stopped; finished stages are not retrained.
"""
import argparse
import json
import logging
import math
import os
import time
import zlib

import numpy as np
import torch
import torch.nn.functional as F

from . import augment, cache, config, datasets
from .models import C7Locator, HeatmapNet

log = logging.getLogger("cspine_train")

SEED = 20260127
STAGES = ("global", "c2", "c7", "c7_locator")


def parse_stages(text):
    stages = {s.strip() for s in text.split(",") if s.strip()}
    bad = stages - set(STAGES)
    if bad or not stages:
        raise SystemExit("--stages: unknown stage(s) %s; choose from %s" % (", ".join(sorted(bad)) or "(none)", ", ".join(STAGES)))
    return stages


def load_or_build_cache(args, data_dirs):
    """One cache per dataset directory (work/cache-<dir name>.npz), built on
    first use and concatenated; several directories make one training set."""
    parts = []
    for d in data_dirs:
        path = os.path.join(args.work, "cache-%s.npz" % os.path.basename(os.path.normpath(d)))
        if not os.path.exists(path):
            if args.format == "phantom":
                samples = datasets.load_phantom(d, limit=args.limit)
            else:
                samples = datasets.load_csxa(d, pixel_sizes=args.pixel_sizes, limit=args.limit)
            cache.build(samples, path)
        parts.append(cache.load(path))
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class Checkpointer:
    def __init__(self, work, stage):
        self.path = os.path.join(work, stage + ".ckpt")
        self.final = os.path.join(work, stage + ".pt")

    def done(self):
        return os.path.exists(self.final)

    def resume(self, model, opt, sched):
        if not os.path.exists(self.path):
            return 0
        st = torch.load(self.path, map_location="cpu")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        log.info("resume %s at epoch %d", self.path, st["epoch"])
        return st["epoch"]

    def save(self, model, opt, sched, epoch):
        tmp = self.path + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "epoch": epoch}, tmp)
        os.replace(tmp, self.path)

    def finish(self, model, extra):
        tmp = self.final + ".tmp"
        torch.save({"model": model.state_dict(), **extra}, tmp)
        os.replace(tmp, self.final)


def heatmap_loss(pred, target, mask):
    w = 1.0 + 9.0 * target
    per = ((pred - target) ** 2 * w).mean(dim=(2, 3))  # [n, k]
    return (per * mask).sum() / mask.sum().clamp(min=1.0) * 100.0


def coord_loss(pred, pts, stride, beta=20.0):
    """Soft-argmax (integral) L1 loss in heatmap pixels: a strong, early
    signal for *which* vertebra a channel belongs to, complementing the
    heatmap loss that shapes the peak the Go decoder reads. Points outside
    the heatmap or missing are masked."""
    n, k, h, w = pred.shape
    p = torch.softmax(pred.reshape(n, k, -1) * beta, -1).reshape(n, k, h, w)
    ax = torch.arange(w, dtype=pred.dtype, device=pred.device)
    ay = torch.arange(h, dtype=pred.dtype, device=pred.device)
    x = (p.sum(2) * ax).sum(-1)
    y = (p.sum(3) * ay).sum(-1)
    t = torch.from_numpy(np.nan_to_num((pts + 0.5) / stride - 0.5, nan=-1e4)).float().to(pred.device)
    m = ((t[..., 0] >= 0) & (t[..., 0] <= w - 1) & (t[..., 1] >= 0) & (t[..., 1] <= h - 1)).float()
    l1 = (x - t[..., 0]).abs() + (y - t[..., 1]).abs()
    return (l1 * m).sum() / m.sum().clamp(min=1.0)


def train_heatmap_stage(args, stage, model, batches_fn, n_items, epochs, lr, cls_weight=0.0, coord_weight=0.0, stride=4, init=None):
    ck = Checkpointer(args.work, stage)
    if ck.done():
        model.load_state_dict(torch.load(ck.final, map_location="cpu")["model"])
        log.info("%s: already trained", stage)
        return model
    dev = torch.device(args.device)
    model.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = max(1, n_items // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15)
    start = ck.resume(model, opt, sched)
    if start == 0 and init and os.path.exists(init):
        model.load_state_dict(torch.load(init, map_location=dev)["model"])
        log.info("%s: initialised from %s", stage, init)
    t0 = time.time()
    for epoch in range(start, epochs):
        model.train()
        rng = np.random.default_rng([args.seed, zlib.crc32(stage.encode()), epoch])
        torch.manual_seed(args.seed + epoch)
        perm = rng.permutation(n_items)
        tot, cnt = 0.0, 0
        te = time.time()
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch : (b + 1) * args.batch]
            x, t, m, y, pts = batches_fn(idx, rng)
            x, t, m, y = x.to(dev), t.to(dev), m.to(dev), y.to(dev)
            out = model(x)
            if isinstance(out, tuple):
                hm, logits = out
                loss = heatmap_loss(hm, t, m)
                if coord_weight:
                    loss = loss + coord_weight * coord_loss(hm, pts, stride)
                ok = y >= 0
                if ok.any():
                    loss = loss + cls_weight * F.cross_entropy(logits[ok], y[ok])
            else:
                loss = heatmap_loss(out, t, m)
                if coord_weight:
                    loss = loss + coord_weight * coord_loss(out, pts, stride)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss)
            cnt += 1
        ck.save(model, opt, sched, epoch + 1)
        log.info("%s epoch %d/%d loss %.4f (%.0f s)", stage, epoch + 1, epochs, tot / cnt, time.time() - te)
    model.cpu()
    ck.finish(model, {"train_seconds": time.time() - t0, "widths": list(model.widths)})
    return model


def global_batches(data):
    G = config.GLOBAL["input_size"]
    imgs = torch.from_numpy(data["g_img"])
    pts = data["g_pts"].astype(np.float64)

    def fn(idx, rng):
        src = imgs[idx].float().unsqueeze(1) / 255.0
        A = augment.affine_params(rng, len(idx), G, G, [((G - 1) / 2.0, (G - 1) / 2.0)] * len(idx),
                                  (0.8, 1.25), 10.0, (0.06 * G, 0.15 * G), 0.5)
        x = augment.warp(src, A, G)
        x = augment.intensity(x, rng)
        p = augment.warp_points(pts[idx], A)
        t, m = augment.heatmaps(p, G, config.GLOBAL["stride"], config.GLOBAL["sigma"])
        return x, t, m, torch.zeros(len(idx), dtype=torch.long) - 1, p

    return fn


def crop_batches(data, key, spec):
    n = spec["input_size"]
    cs = n * config.CACHE_FACTOR
    imgs = torch.from_numpy(data[key + "_img"])
    pts = data[key + "_pts"].astype(np.float64)
    obsc = torch.from_numpy(data["obsc"].astype(np.int64))
    step = spec["side_mm"] / n  # mm per crop pixel (nominal when spacing is unknown)
    jit = (spec["jitter_mm"] / step, spec["jitter_clip_mm"] / step)

    def fn(idx, rng):
        src = imgs[idx].float().unsqueeze(1) / 255.0
        A = augment.affine_params(rng, len(idx), n, n, [((cs - 1) / 2.0, (cs - 1) / 2.0)] * len(idx),
                                  (0.88, 1.12), 6.0, jit, 0.5)
        x = augment.warp(src, A, n)
        x = augment.intensity(x, rng)
        p = augment.warp_points(pts[idx], A)
        t, m = augment.heatmaps(p, n, spec["stride"], spec["sigma"])
        return x, t, m, obsc[idx], p

    return fn


def locator_features(pts_norm, present):
    """pts_norm (n, 19, 2) letterbox-normalised, present (n, 19) bool -> (n, 57)."""
    f = np.concatenate([np.where(present[..., None], pts_norm, 0.0), present[..., None].astype(np.float64)], -1)
    return f.reshape(len(f), -1).astype(np.float32)


def locator_target(c7):
    """c7 (n, 4, 2) -> (n, 4): centre x, y and bbox w, h."""
    lo = c7.min(1)
    hi = c7.max(1)
    return np.concatenate([c7.mean(1), hi - lo], -1).astype(np.float32)


def train_locator(args, data, noise_px):
    ck = Checkpointer(args.work, "c7_locator")
    model = C7Locator()
    if ck.done():
        model.load_state_dict(torch.load(ck.final, map_location="cpu")["model"])
        return model
    dev = torch.device(args.device)
    model.to(dev)
    G = config.GLOBAL["input_size"]
    pts = data["g_pts"].astype(np.float64) / G  # (N, 23, 2)
    ok = ~np.isnan(pts).any((1, 2))
    pts = pts[ok]
    epochs, steps, bs = args.epochs_locator, 150, 256
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * steps)
    start = ck.resume(model, opt, sched)
    t0 = time.time()
    sig = noise_px / G
    for epoch in range(start, epochs):
        rng = np.random.default_rng([args.seed, 7, epoch])
        torch.manual_seed(args.seed + 7 + epoch)
        tot = 0.0
        for _ in range(steps):
            idx = rng.integers(0, len(pts), bs)
            p = pts[idx].copy()
            # random similarity transform about the image centre, flips
            s = np.exp(rng.uniform(np.log(0.7), np.log(1.4), bs))
            th = np.radians(rng.uniform(-config.LOCATOR["rot_deg"], config.LOCATOR["rot_deg"], bs))
            fl = np.where(rng.random(bs) < 0.5, -1.0, 1.0)
            c, sn = np.cos(th) * s, np.sin(th) * s
            q = p - 0.5
            qx = q[..., 0] * fl[:, None]
            qy = q[..., 1]
            p = np.stack([c[:, None] * qx - sn[:, None] * qy, sn[:, None] * qx + c[:, None] * qy], -1) + 0.5
            p += rng.uniform(-0.12, 0.12, (bs, 1, 2))
            target = locator_target(p[:, datasets.C7_IDX])
            inp = p[:, datasets.C2C6_IDX].copy()
            # stage-1-like noise: a per-image level, occasional gross outliers
            lvl = rng.uniform(0.3, 1.5, (bs, 1, 1)) * sig
            inp += rng.normal(0, 1, inp.shape) * lvl
            out = rng.random((bs, 19)) < 0.02
            inp[out] += rng.normal(0, 0.04, (int(out.sum()), 2))
            # dropout of low-confidence points: lower vertebrae behind the shoulders
            present = rng.random((bs, 19)) > 0.04
            cut = rng.random(bs) < 0.5
            first = rng.integers(7, 19, bs)  # from C4 inferior .. C6 down
            present &= ~(cut[:, None] & (np.arange(19)[None, :] >= first[:, None]))
            present[:, 0] |= True  # C2 centroid is always visible on a lateral film
            x = torch.from_numpy(locator_features(inp, present)).to(dev)
            y = torch.from_numpy(target).to(dev)
            loss = F.smooth_l1_loss(model(x) * 20, y * 20)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss)
        ck.save(model, opt, sched, epoch + 1)
        if (epoch + 1) % 10 == 0:
            log.info("c7_locator epoch %d/%d loss %.4f", epoch + 1, epochs, tot / steps)
    model.cpu()
    ck.finish(model, {"train_seconds": time.time() - t0})
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, nargs="+", help="training dataset directories")
    ap.add_argument("--val", help="validation dataset directory (same format)")
    ap.add_argument("--format", choices=["phantom", "csxa"], default="phantom")
    ap.add_argument("--pixel-sizes", help="CSXA: CSV of per-image pixel size (mm)")
    ap.add_argument("--work", required=True, help="cache and checkpoint directory (resumable)")
    ap.add_argument("--out", required=True, help="where the ONNX files and manifest.json go")
    ap.add_argument("--limit", type=int, default=0, help="use at most N images (0 = all)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs-global", type=int, default=10)
    ap.add_argument("--epochs-c2", type=int, default=8)
    ap.add_argument("--epochs-c7", type=int, default=10)
    ap.add_argument("--epochs-locator", type=int, default=30, help="locator epochs of 150 steps")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-3,
                    help="peak learning rate of the heatmap stages' one-cycle schedule (lower it, e.g. 5e-4, to fine-tune with --init-*)")
    ap.add_argument("--coord-weight", type=float, default=0.1, help="weight of the global model's soft-argmax loss")
    ap.add_argument("--init-global", help="initialise the global model from this .pt (fine-tuning)")
    ap.add_argument("--init-c2", help="initialise the C2 specialist from this .pt")
    ap.add_argument("--init-c7", help="initialise the C7 specialist from this .pt")
    ap.add_argument("--stages", default=",".join(STAGES),
                    help="comma-separated stages to train (global, c2, c7, c7_locator); the others are kept from --base")
    ap.add_argument("--base", help="model directory (manifest.json, export_check.json, ONNX files) whose untrained stages are kept")
    ap.add_argument("--c7-widths", type=int, nargs=5, metavar="W",
                    help="channels of the C7 specialist at strides 2..32 (default: config.WIDTHS)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=SEED,
                    help="seed of the weight initialisation, batch order and augmentation (another seed trains another "
                         "member of an ensemble; the shipped models use the default)")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--name", default="cspine-phantom")
    ap.add_argument("--trained-on", default="", help="provenance text for the manifest")
    ap.add_argument("--note", default="", help="free-text training note for the manifest (schedule, initialisation)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.work, exist_ok=True)

    stages = parse_stages(args.stages)
    if stages != set(STAGES) and not args.base:
        ap.error("--stages without every stage needs --base (the model directory whose other stages are kept)")
    data = load_or_build_cache(args, args.data)
    n = len(data["ids"])
    log.info("training images: %d; stages: %s", n, ", ".join(s for s in STAGES if s in stages))
    G = config.GLOBAL
    widths = {"global": config.WIDTHS, "c2": config.WIDTHS, "c7": tuple(args.c7_widths) if args.c7_widths else config.WIDTHS}
    models = {k: None for k in STAGES}
    if "global" in stages:
        models["global"] = train_heatmap_stage(
            args, "global", HeatmapNet(23, widths=widths["global"], out_stride=G["stride"]), global_batches(data), n,
            args.epochs_global, args.lr, coord_weight=args.coord_weight, stride=G["stride"], init=args.init_global)
    if "c2" in stages:
        ok2 = ~np.isnan(data["c2_pts"]).all((1, 2))
        sub2 = {k: v[ok2] for k, v in data.items()}
        models["c2"] = train_heatmap_stage(
            args, "c2", HeatmapNet(3, widths=widths["c2"], out_stride=config.C2["stride"]),
            crop_batches(sub2, "c2", config.C2), len(sub2["ids"]), args.epochs_c2, args.lr,
            coord_weight=args.coord_weight, stride=config.C2["stride"], init=args.init_c2)
    if "c7" in stages:
        ok7 = ~np.isnan(data["c7_pts"]).all((1, 2))
        sub7 = {k: v[ok7] for k, v in data.items()}
        models["c7"] = train_heatmap_stage(
            args, "c7", HeatmapNet(4, widths=widths["c7"], out_stride=config.C7["stride"], obscuration_classes=3),
            crop_batches(sub7, "c7", config.C7), len(sub7["ids"]), args.epochs_c7, args.lr, cls_weight=0.5,
            coord_weight=args.coord_weight, stride=config.C7["stride"], init=args.init_c7)
    if "c7_locator" in stages:
        models["c7_locator"] = train_locator(args, data, noise_px=1.5)
    # Wall-clock training time per trained stage, as recorded when it
    # finished (export_all gives a kept stage its time from the base
    # manifest); and the trained weights beside the ONNX files: the exported
    # graphs have batch normalisation folded into the convolutions, so
    # fine-tuning a shipped model later (--init-global/--init-c2/--init-c7)
    # needs these.
    stage_seconds = {}
    ck = os.path.join(args.out, "checkpoints")
    os.makedirs(ck, exist_ok=True)
    for name in STAGES:
        if models[name] is None:
            continue
        st = torch.load(os.path.join(args.work, name + ".pt"), map_location="cpu")
        stage_seconds[name] = round(float(st.get("train_seconds", 0.0)), 1)
        torch.save({"model": st["model"], "widths": list(widths.get(name, ()))}, os.path.join(ck, name + ".pt"))
    from . import export

    export.export_all(args, models, n, stage_seconds, widths=widths)
    if args.val and stages != set(STAGES):
        log.info("--val skipped: the Python reference needs all four stages in --work; run cspine eval on %s", args.out)
    elif args.val:
        from . import evaluate

        evaluate.run(args, args.out)


if __name__ == "__main__":
    main()
