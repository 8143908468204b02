"""Synthetic card transactions for the fraud demo.

FEATURES lists the model's 30 inputs in order, with dtype and the bounds a
real payment feed would respect. generate(n, seed) returns (X, y): X a float32
array (NaN where a field is unknown, as in real feeds), y 1 for fraud. Fraud is
rare (~2%) and driven by a latent score over amount, velocity, distance,
merchant and device risk, so the model has something real to learn.
"""
import numpy as np

# (name, dtype, min, max, default-or-None)
FEATURES = [
    ("amount", "float", 0, 50000, None),
    ("hour_of_day", "int", 0, 23, 12),
    ("day_of_week", "int", 0, 6, 3),
    ("is_online", "bool", None, None, False),
    ("is_international", "bool", None, None, False),
    ("card_present", "bool", None, None, True),
    ("merchant_risk", "float", 0, 1, 0.1),
    ("merchant_category", "int", 0, 19, 0),
    ("distance_from_home_km", "float", 0, 20000, None),
    ("distance_from_last_txn_km", "float", 0, 20000, None),
    ("seconds_since_last_txn", "float", 0, 31536000, None),
    ("txn_count_1h", "int", 0, 1000, 0),
    ("txn_count_24h", "int", 0, 10000, 1),
    ("amount_sum_24h", "float", 0, 1000000, 0),
    ("avg_amount_30d", "float", 0, 50000, 60),
    ("amount_to_avg_ratio", "float", 0, 10000, 1),
    ("account_age_days", "int", 0, 36500, 365),
    ("card_age_days", "int", 0, 36500, 365),
    ("user_age", "int", 16, 120, 40),
    ("credit_limit", "float", 0, 1000000, 5000),
    ("utilization", "float", 0, 2, 0.3),
    ("failed_logins_24h", "int", 0, 1000, 0),
    ("device_change", "bool", None, None, False),
    ("ip_risk", "float", 0, 1, None),
    ("email_age_days", "int", 0, 36500, 365),
    ("chargebacks_365d", "int", 0, 1000, 0),
    ("country_mismatch", "bool", None, None, False),
    ("velocity_score", "float", 0, 100, 0),
    ("is_weekend", "bool", None, None, False),
    ("is_night", "bool", None, None, False),
]
NAMES = [f[0] for f in FEATURES]


def generate(n, seed=7):
    rng = np.random.default_rng(seed)
    c = {}
    c["amount"] = np.round(rng.lognormal(3.8, 1.1, n), 2)
    c["hour_of_day"] = rng.integers(0, 24, n)
    c["day_of_week"] = rng.integers(0, 7, n)
    c["is_online"] = rng.random(n) < 0.45
    c["is_international"] = rng.random(n) < 0.08
    c["card_present"] = ~c["is_online"] & (rng.random(n) < 0.9)
    c["merchant_risk"] = rng.beta(1.2, 8, n)
    c["merchant_category"] = rng.integers(0, 20, n)
    c["distance_from_home_km"] = rng.exponential(15, n) + 1000 * c["is_international"]
    c["distance_from_last_txn_km"] = rng.exponential(10, n)
    c["seconds_since_last_txn"] = rng.exponential(20000, n)
    c["txn_count_1h"] = rng.poisson(0.4, n)
    c["txn_count_24h"] = c["txn_count_1h"] + rng.poisson(3, n)
    c["avg_amount_30d"] = np.round(rng.lognormal(3.8, 0.7, n), 2)
    c["amount_sum_24h"] = c["avg_amount_30d"] * c["txn_count_24h"] + c["amount"]
    c["amount_to_avg_ratio"] = c["amount"] / np.maximum(c["avg_amount_30d"], 1)
    c["account_age_days"] = rng.integers(1, 4000, n)
    c["card_age_days"] = np.minimum(c["account_age_days"], rng.integers(1, 2000, n))
    c["user_age"] = rng.integers(18, 90, n)
    c["credit_limit"] = np.round(rng.lognormal(8.3, 0.6, n), -2)
    c["utilization"] = np.clip(rng.beta(2, 5, n), 0, 2)
    c["failed_logins_24h"] = rng.poisson(0.1, n)
    c["device_change"] = rng.random(n) < 0.05
    c["ip_risk"] = rng.beta(1, 12, n)
    c["email_age_days"] = rng.integers(0, 5000, n)
    c["chargebacks_365d"] = rng.poisson(0.05, n)
    c["country_mismatch"] = c["is_international"] & (rng.random(n) < 0.5)
    c["velocity_score"] = np.clip(c["txn_count_1h"] * 8 + rng.normal(0, 3, n), 0, 100)
    c["is_weekend"] = c["day_of_week"] >= 5
    c["is_night"] = (c["hour_of_day"] < 6) | (c["hour_of_day"] >= 23)

    latent = (-6.2 + 1.1 * np.log1p(c["amount_to_avg_ratio"]) + 0.25 * c["txn_count_1h"]
              + 0.004 * np.minimum(c["distance_from_home_km"], 2000) / 2
              + 4.0 * c["merchant_risk"] + 6.0 * c["ip_risk"] + 1.2 * c["device_change"]
              + 0.8 * c["is_online"] * c["is_night"] + 1.0 * c["country_mismatch"]
              + 0.4 * c["failed_logins_24h"] + 0.6 * c["chargebacks_365d"]
              - 0.0004 * c["account_age_days"] - 0.6 * c["card_present"]
              + 0.5 * (c["email_age_days"] < 30))
    y = (rng.random(n) < 1 / (1 + np.exp(-latent))).astype(np.float32)

    X = np.column_stack([np.asarray(c[name], dtype=np.float32) for name in NAMES])
    # Real feeds lose fields: ip_risk is unknown for card-present purchases,
    # distances and gaps for first transactions.
    X[c["card_present"], NAMES.index("ip_risk")] = np.nan
    first = rng.random(n) < 0.03
    for name in ("distance_from_last_txn_km", "seconds_since_last_txn"):
        X[first, NAMES.index(name)] = np.nan
    return X, y
