#!/usr/bin/python3
"""How far the review flag is from "catch 95% of large errors, flag 30%", and why.

Reads the samples files `cspine eval --samples FILE` writes (one JSON object per
image: Truth, Result, Features) for several phantom sets and prints:

1. the pooled review trade-off of a logistic risk model on 21 review features,
   cross-fitted (each set scored by a model fitted on the others);
2. the same with every angle error scaled by k < 1 (how much more accurate the
   models would have to be);
3. the C7 shape prior refitted with the *true* C3-C6 landmarks as its inputs
   instead of the pipeline's (how much better column landmarks would buy).

numpy only (python3-numpy). Used for docs/evaluation.md; it is an analysis aid,
not part of the product:

    /usr/bin/python3 docs/tools/flag_headroom.py FITL=fitl.jsonl VALL=vall.jsonl CHECK=check.jsonl
"""
import json
import math
import sys

import numpy as np

ANGLES = ["c2c7_cobb_deg", "c2_slope_deg", "c7_slope_deg", "c7_sup_slope_deg"]
LARGE_DEG = 5.0
# Reasons no threshold of --calibrate switches off.
FORCED = {"no_pixel_spacing", "implausible_geometry", "not_lateral", "low_image_quality"}


def lg(v):
    return math.log(v + 0.1) if v >= 0 else -5.0


def features(f):
    o = f["c7_obscuration"]
    return [f["c7_confidence"], f["c7_min_corner_confidence"],
            math.log(max(o[2], 1e-4)), math.log(max(o[1], 1e-4)), math.log(max(o[0], 1e-4)),
            lg(f["c7_disagreement_mm"]), lg(f["c2_disagreement_mm"]),
            lg(f["c7_inf_slope_sd_deg"]), lg(f["c7_sup_slope_sd_deg"]), lg(f["c2_slope_sd_deg"]),
            lg(f["c7_choice_delta_deg"]), lg(f["c7_spread_deg"]), lg(f["c2_spread_deg"]),
            lg(f["c7_inf_prior_delta_deg"]), lg(f["c7_sup_prior_delta_deg"]),
            f["global_confidence"], f["contrast"], f["c7_steps"], f["c7_levels"], f["c7_level_margin"],
            float(f.get("c7_level_moved", False))]


def load(path):
    rows = []
    for line in open(path):
        d = json.loads(line)
        t, r, f = d["Truth"], d["Result"], d.get("Features") or {}
        if not t.get("measurable") or r.get("status") != "ok" or not r.get("parameters"):
            continue
        err = {a: r["parameters"][a] - t["parameters"][a] for a in ANGLES}
        reasons = (r.get("review") or {}).get("reasons", [])
        rows.append(dict(err=err, forced=bool(FORCED & set(reasons)), x=features(f), f=f, t=t,
                         cls=int(np.argmax(f["c7_obscuration"]))))
    return rows


def fit_logistic(x, y, l2=1.0, iters=50):
    """L2-penalised logistic regression by Newton's method (bias unpenalised)."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = np.c_[(x - mu) / sd, np.ones(len(x))]
    w = np.zeros(z.shape[1])
    pen = np.full(z.shape[1], l2)
    pen[-1] = 0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-z @ w))
        g = z.T @ (p - y) + pen * w
        h = (z * (p * (1 - p))[:, None]).T @ z + np.diag(pen)
        w -= np.linalg.solve(h, g)
    return lambda xx: 1 / (1 + np.exp(-np.c_[(xx - mu) / sd, np.ones(len(xx))] @ w))


def large(errs, k=1.0):
    return np.array([max(abs(v) * k for v in e) > LARGE_DEG for e in errs])


def curve(score, y, forced):
    """Recall at flag budgets and flag rate at recall targets, forced flags first."""
    s = np.where(forced, np.inf, score)
    order = np.argsort(-s, kind="stable")
    c = np.cumsum(y[order]) / max(y.sum(), 1)
    n = len(y)
    out = {"recall@%d%%" % (100 * r): round(float(c[int(r * n) - 1]), 3) for r in (0.2, 0.3, 0.4)}
    out.update({"flag@%d%%" % (100 * r): round(float((np.argmax(c >= r) + 1) / n), 3) for r in (0.8, 0.9, 0.95)})
    return out


def pooled(sets, errs_of, x_of):
    """Leave-one-set-out scores pooled over all sets."""
    scores, ys, forced = [], [], []
    for held in sets:
        xs = np.vstack([x_of(s) for s in sets if s != held])
        yt = np.concatenate([large(errs_of(s)) for s in sets if s != held])
        model = fit_logistic(xs, yt.astype(float))
        scores.append(model(x_of(held)))
        ys.append(large(errs_of(held)))
        forced.append(np.array([r["forced"] for r in sets[held]]))
    y = np.concatenate(ys)
    return curve(np.concatenate(scores), y, np.concatenate(forced)), int(y.sum()), len(y)


def slope(a, p):
    return math.degrees(math.atan2(a[1] - p[1], abs(a[0] - p[0])))


def true_column(t):
    """The prior's inputs (pipeline.PriorInputs) from the true landmarks."""
    lm = {l["name"]: (l["x"], l["y"]) for l in t["landmarks"]}
    s = [slope(lm["C2_inf_ant"], lm["C2_inf_post"])]
    for n in range(3, 7):
        for e in ("sup", "inf"):
            s.append(slope(lm["C%d_%s_ant" % (n, e)], lm["C%d_%s_post" % (n, e)]))
    ant = -1 if lm["C2_inf_ant"][0] < lm["C2_inf_post"][0] else 1

    def centre(n):
        return np.mean([lm["C%d_%s_%s" % (n, e, c)] for e in ("sup", "inf") for c in ("ant", "post")], axis=0)
    pts = [np.mean([lm["C2_inf_ant"], lm["C2_inf_post"]], axis=0)] + [centre(n) for n in range(3, 7)]
    return s + [math.degrees(math.atan2(ant * (b[0] - a[0]), b[1] - a[1])) for a, b in zip(pts, pts[1:])]


def refit_prior(sets, fit_set, column):
    """Refit the C7 prior (OLS per endplate, blend weight per estimated
    obscuration class, clip at 3 residual SDs, as eval.FitC7Prior) on fit_set
    with column(row) as inputs; return every set's angle errors with it and
    the prior-specialist distances (the risk features log_c7_*_prior_delta_deg)."""
    def design(r, e):
        img = r["f"]["c7_image_slopes_deg"]
        return list(column(r)) + [img[1 - e], 1.0]
    truth = lambda r: [r["t"]["parameters"]["c7_slope_deg"], r["t"]["parameters"]["c7_sup_slope_deg"]]
    rows = sets[fit_set]
    models = []
    for e in (0, 1):
        a = np.array([design(r, e) for r in rows])
        t = np.array([truth(r)[e] for r in rows])
        coef = np.linalg.lstsq(a, t, rcond=None)[0]
        d = a @ coef - np.array([r["f"]["c7_image_slopes_deg"][e] for r in rows])
        resid = t - np.array([r["f"]["c7_image_slopes_deg"][e] for r in rows])
        cls = np.array([r["cls"] for r in rows])
        w = [float(np.clip(d[cls == k] @ resid[cls == k] / max(d[cls == k] @ d[cls == k], 1e-9), 0, 1)) for k in range(3)]
        models.append((coef, w, float(np.std((t - a @ coef)[cls == 2]))))
    out, deltas = {}, {}
    for name, rs in sets.items():
        errs, dist = [], []
        for r in rs:
            c7, dd = [], []
            for e in (0, 1):
                coef, w, sd = models[e]
                img = r["f"]["c7_image_slopes_deg"][e]
                d = float(np.dot(design(r, e), coef)) - img
                c7.append(img + w[r["cls"]] * float(np.clip(d, -3 * sd, 3 * sd)))
                dd.append(abs(d))
            c7e = [c7[0] - truth(r)[0], c7[1] - truth(r)[1]]
            c2e = r["err"]["c2_slope_deg"]
            errs.append([c7e[0] - c2e, c2e, c7e[0], c7e[1]])
            dist.append(dd)
        out[name], deltas[name] = errs, np.array(dist)
    return out, deltas


def main(argv):
    sets = {}
    for arg in argv:
        name, path = arg.split("=", 1)
        sets[name] = load(path)
    errs = {s: [[r["err"][a] for a in ANGLES] for r in rows] for s, rows in sets.items()}
    x_of = lambda s: np.array([r["x"] for r in sets[s]])
    print("1. pooled review trade-off (leave-one-set-out logistic risk, 21 features):")
    c, n_large, n = pooled(sets, lambda s: errs[s], x_of)
    print("   %d results, %d large errors: %s" % (n, n_large, c))
    print("2. every angle error scaled by k:")
    for k in (0.9, 0.8, 0.7):
        scaled = {s: [[v * k for v in e] for e in errs[s]] for s in sets}
        c, n_large, _ = pooled(sets, lambda s: scaled[s], x_of)
        print("   k=%.1f: %d large errors: %s" % (k, n_large, c))
    first = next(iter(sets))
    print("3. C7 prior refitted on %s; large errors per set, pooled trade-off with the new prior distances:" % first)
    for label, column in (("pipeline's C2-C6 landmarks", lambda r: r["f"]["endplate_slopes_deg"] + r["f"]["column_directions_deg"]),
                          ("true C2-C6 landmarks", lambda r: true_column(r["t"]))):
        e, d = refit_prior(sets, first, column)
        counts = {s: int(large(e[s]).sum()) for s in sets}

        def x_new(s):
            x = x_of(s).copy()
            x[:, 13], x[:, 14] = np.log(d[s][:, 0] + 0.1), np.log(d[s][:, 1] + 0.1)
            return x
        c, _, _ = pooled(sets, lambda s: e[s], x_new)
        print("   %s: large errors %s; pooled %s" % (label, counts, c))


if __name__ == "__main__":
    main(sys.argv[1:])
