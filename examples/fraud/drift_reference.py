#!/usr/bin/python3
"""Writes the fraud model's drift reference (drift_reference.json beside the
model): per input and for the prediction, decile bin edges and the share of
training rows in each bin (plus the share missing). rtml compares live traffic
against it (population stability index).

  /usr/bin/python3 examples/fraud/drift_reference.py [--rows 200000] [--model-dir ...]
"""
import argparse
import json
import os
import sys

import numpy as np
import xgboost as xgb

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import transactions  # noqa: E402


def bins(values, n_bins=10):
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    edges = []
    if present.size:
        for q in np.quantile(present, [k / n_bins for k in range(1, n_bins)]):
            if not edges or q > edges[-1]:
                edges.append(float(q))
    idx = np.searchsorted(np.asarray(edges), present, side="left") if edges else \
        np.zeros(present.size, dtype=int)
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    proportions = list(counts / max(values.size, 1)) + [float(np.isnan(values).sum()) / max(values.size, 1)]
    return {"edges": edges, "proportions": proportions}


def write_reference(X, booster, out_path):
    pred = booster.inplace_predict(X)
    ref = {"features": {name: bins(X[:, i]) for i, name in enumerate(transactions.NAMES)},
           "prediction": bins(pred)}
    with open(out_path, "w") as f:
        json.dump(ref, f)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--model-dir", default=os.path.join(here, "models", "fraud", "1"))
    args = ap.parse_args()
    X, _ = transactions.generate(args.rows, seed=7)
    booster = xgb.Booster(model_file=os.path.join(args.model_dir, "model.json"))
    booster.set_param({"nthread": 2})
    write_reference(X[: int(0.8 * len(X))], booster, os.path.join(args.model_dir,
                                                                   "drift_reference.json"))
