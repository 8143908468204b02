#!/usr/bin/env python3
"""Generates the XGBoost parity test data in tests/testdata/parity/.

For each objective rtml supports, trains a small model with the XGBoost of the
interpreter running this script, saves it as JSON, and writes XGBoost's own
predictions for a shared set of random rows (with missing values). Run it with
Debian's python3 (XGBoost 1.7) and with the project's pinned PyPI XGBoost:

  scripts/gen_testdata.sh            # does both, see there

  python3 scripts/gen_testdata.py rows OUT_DIR          # writes rows.f32
  python3 scripts/gen_testdata.py models OUT_DIR TAG    # writes TAG/*.json, *.pred.f32

Files are little-endian float32, row-major; manifest.json says the shapes.
"""
import json
import os
import sys

import numpy as np
import xgboost as xgb

N_ROWS = 10_000
N_FEATURES = 6
MISSING_RATE = 0.1
N_CLASSES = 3

OBJECTIVES = {
    "binary_logistic": {"objective": "binary:logistic"},
    "reg_squarederror": {"objective": "reg:squarederror"},
    "reg_logistic": {"objective": "reg:logistic"},
    "multi_softprob": {"objective": "multi:softprob", "num_class": N_CLASSES},
}


def with_missing(rng, x):
    x = x.copy()
    x[rng.random(x.shape) < MISSING_RATE] = np.nan
    return x


def make_rows(out_dir):
    rng = np.random.default_rng(20261126)
    x = rng.normal(0.0, 2.0, size=(N_ROWS, N_FEATURES)).astype(np.float32)
    x[:, 5] = np.round(x[:, 5])  # a feature with exact ties on thresholds
    x = with_missing(rng, x)
    x.astype("<f4").tofile(os.path.join(out_dir, "rows.f32"))


def labels(objective, x, rng):
    z = np.nan_to_num(x)
    score = 1.5 * z[:, 0] - z[:, 1] * z[:, 2] + np.sin(z[:, 3]) + 0.3 * z[:, 5]
    if objective == "binary:logistic":
        return (score + rng.normal(0, 1, len(z)) > 0).astype(np.float32)
    if objective == "reg:squarederror":
        return (10.0 + 3.0 * score + rng.normal(0, 1, len(z))).astype(np.float32)
    if objective == "reg:logistic":
        return (1.0 / (1.0 + np.exp(-score))).astype(np.float32)
    return np.digitize(score, [-1.0, 1.0]).astype(np.float32)


def train(objective_params, seed):
    rng = np.random.default_rng(seed)
    x = with_missing(rng, rng.normal(0.0, 2.0, size=(4000, N_FEATURES)).astype(np.float32))
    x[:, 5] = np.round(x[:, 5])
    y = labels(objective_params["objective"], x, rng)
    params = dict(objective_params, max_depth=5, eta=0.3, nthread=1, seed=seed)
    return xgb.train(params, xgb.DMatrix(x, label=y, missing=np.nan), num_boost_round=25)


def make_models(out_dir, tag):
    rows = np.fromfile(os.path.join(out_dir, "rows.f32"), dtype="<f4").reshape(N_ROWS, N_FEATURES)
    os.makedirs(os.path.join(out_dir, tag), exist_ok=True)
    entries = []
    for i, (name, params) in enumerate(OBJECTIVES.items()):
        booster = train(params, seed=100 + i)
        model_path = os.path.join(out_dir, tag, name + ".json")
        booster.save_model(model_path)
        booster.set_param({"nthread": 1})
        pred = booster.predict(xgb.DMatrix(rows, missing=np.nan)).astype("<f4")
        pred.tofile(os.path.join(out_dir, tag, name + ".pred.f32"))
        entries.append({"name": name, "objective": params["objective"],
                        "outputs": int(pred.size // N_ROWS)})
    with open(os.path.join(out_dir, tag, "manifest.json"), "w") as f:
        json.dump({"xgboost": xgb.__version__, "rows": N_ROWS, "features": N_FEATURES,
                   "models": entries}, f, indent=1)
        f.write("\n")
    print(f"{tag}: xgboost {xgb.__version__}, {len(entries)} models")


if __name__ == "__main__":
    if sys.argv[1] == "rows":
        make_rows(sys.argv[2])
    else:
        make_models(sys.argv[2], sys.argv[3])
