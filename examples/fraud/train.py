#!/usr/bin/python3
"""Trains the demo fraud model and writes its model repository version.

  /usr/bin/python3 examples/fraud/train.py [--users 2000] [--minutes 90]
      [--out examples/fraud/models/fraud/1] [--rtml build/rtml]

The training set comes from rtml itself, so that training sees exactly what
serving computes: transactions.history() writes a history of raw
transactions (data/transactions.jsonl, the stream feature view's source.path:
the topic's events kept as a file), then `rtml features historical` adds, row
by row, the window inputs the stream would have read for that transaction
(txn_count_1h, txn_count_24h, amount_sum_24h, seconds_since_last_txn) and
the user profile the online store would have held then (feature service
fraud_v1). Uses Debian's python3-xgboost (1.7): 200 trees of depth 6,
binary:logistic, with the feature names stored in the model. Writes
model.json, model.yaml (inputs with dtype, bounds and defaults from
transactions.FEATURES), drift_reference.json (drift_reference.py), prints the
held-out AUC as it trains, and writes request.json, the README's example.
"""
import argparse
import csv
import json
import os
import subprocess
import sys

import numpy as np
import xgboost as xgb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transactions  # noqa: E402

ap = argparse.ArgumentParser()
here = os.path.dirname(os.path.abspath(__file__))
ap.add_argument("--users", type=int, default=2000)
ap.add_argument("--minutes", type=int, default=90)
ap.add_argument("--out", default=os.path.join(here, "models", "fraud", "1"))
ap.add_argument("--rtml", default=os.environ.get("RTML_BIN",
                                                  os.path.join(here, "..", "..", "build", "rtml")))
args = ap.parse_args()

if not os.path.exists(os.path.join(here, "data", "user_profile.csv")):
    subprocess.run([sys.executable, os.path.join(here, "make_features.py")], check=True)
history = os.path.join(here, "data", "transactions.jsonl")
os.makedirs(os.path.dirname(history), exist_ok=True)
events = transactions.history(users=args.users, minutes=args.minutes)
with open(history, "w") as f:
    for e in events:
        f.write(json.dumps(e) + "\n")
print(f"wrote {len(events)} transactions of {args.users} users over {args.minutes} min to "
      f"{history}", flush=True)
train_csv = os.path.join(here, "data", "train.csv")
subprocess.run([args.rtml, "features", "historical", "--config", os.path.join(here, "rtml.yaml"),
                "--entities", history, "--timestamp-field", "event_time", "--service", "fraud_v1",
                "--out", train_csv], check=True)


def cell(text, default):
    """A training value as serving uses it: an absent one (a null field, a
    NOT_FOUND stored feature) becomes the input's default, else missing."""
    if text == "":
        return np.nan if default is None else float(default)
    return {"true": 1.0, "false": 0.0}.get(text) if text in ("true", "false") else float(text)


with open(train_csv) as f:
    rows = list(csv.DictReader(f))
X = np.array([[cell(r[name], spec[4]) for name, spec in zip(transactions.NAMES,
                                                            transactions.FEATURES)]
              for r in rows], dtype=np.float32)
y = np.array([float(r["is_fraud"]) for r in rows], dtype=np.float32)
# A random 80/20 split (the rows are in time order; the reference for drift
# must cover the whole history the windows grow through).
order = np.random.default_rng(7).permutation(len(y))
X, y = X[order], y[order]
split = int(0.8 * len(y))
dtrain = xgb.DMatrix(X[:split], label=y[:split], feature_names=transactions.NAMES, missing=np.nan)
dtest = xgb.DMatrix(X[split:], label=y[split:], feature_names=transactions.NAMES, missing=np.nan)
params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "subsample": 0.8,
          "colsample_bytree": 0.8, "eval_metric": "auc", "nthread": 2, "seed": 7}
print(f"training on {split} rows ({int(y[:split].sum())} fraud), 200 trees of depth 6 ...",
      flush=True)
booster = xgb.train(params, dtrain, num_boost_round=200, evals=[(dtest, "test")],
                    verbose_eval=50)
os.makedirs(args.out, exist_ok=True)
booster.save_model(os.path.join(args.out, "model.json"))
import drift_reference  # noqa: E402
drift_reference.write_reference(X[:split], booster, os.path.join(args.out, "drift_reference.json"))


def yaml_input(name, dtype, lo, hi, default):
    if name in transactions.WINDOW_INPUTS:
        hi = None  # computed by rtml: as high as the stream makes them
    parts = [f"name: {name}", f"dtype: {dtype}"]
    if default is not None:
        parts.append(f"default: {str(default).lower() if isinstance(default, bool) else default}")
    if lo is not None:
        parts.append(f"min: {lo}")
    if hi is not None:
        parts.append(f"max: {hi}")
    if name == "amount":
        parts.append("required: true")
    return "  - {" + ", ".join(parts) + "}"


with open(os.path.join(args.out, "model.yaml"), "w") as f:
    f.write("# Written by examples/fraud/train.py: the demo card-fraud model.\n")
    f.write("description: card-transaction fraud probability (synthetic data, "
            "200 trees x depth 6, XGBoost 1.7)\n")
    f.write("backend: native\n")
    f.write("feature_service: fraud_v1   # user profile and stream window inputs, by user_id\n")
    f.write("file: model.json\noutput: {kind: probability}\ninputs:\n")
    for spec in transactions.FEATURES:
        f.write(yaml_input(*spec) + "\n")

example = {"user_id": 123, "amount": 912.4, "hour_of_day": 3, "day_of_week": 5, "is_online": True,
           "is_international": True, "card_present": False, "merchant_risk": 0.62,
           "merchant_category": 7, "distance_from_home_km": 1840.5, "amount_to_avg_ratio": 18.93, "device_change": True, "ip_risk": 0.71,
           "country_mismatch": True, "is_night": True}
with open(os.path.join(here, "request.json"), "w") as f:
    json.dump({"features": example}, f, indent=1)
    f.write("\n")
print(f"wrote {args.out}/model.json, model.yaml and {here}/request.json")
