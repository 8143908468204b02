#!/usr/bin/python3
"""Trains the demo fraud model and writes its model repository version.

  /usr/bin/python3 examples/fraud/train.py [--rows 200000] [--out examples/fraud/models/fraud/1]

Uses Debian's python3-xgboost (1.7): 200 trees of depth 6, binary:logistic,
with the feature names stored in the model. Writes model.json and model.yaml
(inputs with dtype, bounds and defaults from transactions.FEATURES) and
drift_reference.json (drift_reference.py), prints the held-out AUC as it
trains, and writes request.json, the README's example request.
"""
import argparse
import json
import os
import sys

import numpy as np
import xgboost as xgb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transactions  # noqa: E402

ap = argparse.ArgumentParser()
here = os.path.dirname(os.path.abspath(__file__))
ap.add_argument("--rows", type=int, default=200_000)
ap.add_argument("--out", default=os.path.join(here, "models", "fraud", "1"))
args = ap.parse_args()

X, y = transactions.generate(args.rows, seed=7)
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
    f.write("feature_service: fraud_v1   # user profile inputs from the online store, by user_id\n")
    f.write("file: model.json\noutput: {kind: probability}\ninputs:\n")
    for spec in transactions.FEATURES:
        f.write(yaml_input(*spec) + "\n")

example = {"user_id": 123, "amount": 912.4, "hour_of_day": 3, "day_of_week": 5, "is_online": True,
           "is_international": True, "card_present": False, "merchant_risk": 0.62,
           "merchant_category": 7, "distance_from_home_km": 1840.5, "txn_count_1h": 4,
           "txn_count_24h": 9, "amount_to_avg_ratio": 18.93, "device_change": True, "ip_risk": 0.71,
           "country_mismatch": True, "is_night": True}
with open(os.path.join(here, "request.json"), "w") as f:
    json.dump({"features": example}, f, indent=1)
    f.write("\n")
print(f"wrote {args.out}/model.json, model.yaml and {here}/request.json")
