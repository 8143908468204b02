"""Synthetic card transactions for the fraud demo.

FEATURES lists the model's 30 inputs in order, with dtype and the bounds a
real payment feed would respect. history() draws raw transactions as the
demo's generator sends them (what train.py turns into a training set through
`rtml features historical`); generate(n, seed) returns (X, y) rows like the
training data: X a float32 array with all 30 inputs (the window inputs
computed exactly from the history, NaN where a field is unknown, as in real
feeds), y 1 for fraud. Fraud is rare (~2%): a latent score over amount,
distance, merchant and device risk, plus fraud sessions (bursts of large
online purchases seconds apart) that the window inputs catch.
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
    ("seconds_since_last_txn", "float", 0, None, 2592000),  # none before: 30 days
    ("txn_count_1h", "int", 0, None, 0),
    ("txn_count_24h", "int", 0, None, 0),
    ("amount_sum_24h", "float", 0, None, 0),
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


# The inputs rtml computes from the stream (features.yaml, user_txn) and the
# user profile it reads from the online store: neither is in a raw event.
WINDOW_INPUTS = ["txn_count_1h", "txn_count_24h", "amount_sum_24h", "seconds_since_last_txn"]
PROFILE_INPUTS = ["avg_amount_30d", "account_age_days", "card_age_days", "user_age",
                  "credit_limit", "utilization", "email_age_days", "chargebacks_365d"]
EVENT_INPUTS = [n for n in NAMES if n not in WINDOW_INPUTS + PROFILE_INPUTS]
# The demo's generator: 1000 events/s over 50000 users.
RATE_PER_USER_S = 0.02


def _draw(n, rng):
    """Transaction and (per-row) profile fields, and the fraud label from a
    latent score over them."""
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
    c["avg_amount_30d"] = np.round(rng.lognormal(3.8, 0.7, n), 2)
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
    c["velocity_score"] = np.clip(rng.gamma(2, 6, n), 0, 100)  # a vendor's score
    c["is_weekend"] = c["day_of_week"] >= 5
    c["is_night"] = (c["hour_of_day"] < 6) | (c["hour_of_day"] >= 23)
    latent = (-5.9 + 1.1 * np.log1p(c["amount_to_avg_ratio"])
              + 0.004 * np.minimum(c["distance_from_home_km"], 2000) / 2
              + 4.0 * c["merchant_risk"] + 6.0 * c["ip_risk"] + 1.2 * c["device_change"]
              + 0.8 * c["is_online"] * c["is_night"] + 1.0 * c["country_mismatch"]
              + 0.4 * c["failed_logins_24h"] + 0.6 * c["chargebacks_365d"]
              - 0.0004 * c["account_age_days"] - 0.6 * c["card_present"]
              + 0.5 * (c["email_age_days"] < 30))
    y = (rng.random(n) < 1 / (1 + np.exp(-latent))).astype(np.float32)
    # Real feeds lose fields: ip_risk is unknown for card-present purchases,
    # distances for first transactions.
    c["ip_risk"] = np.where(c["card_present"], np.nan, c["ip_risk"])
    c["distance_from_last_txn_km"] = np.where(rng.random(n) < 0.03, np.nan,
                                              c["distance_from_last_txn_km"])
    return c, y


def history(users=2000, minutes=90, rate_per_user_s=RATE_PER_USER_S, end_s=None, seed=7):
    """Raw transactions as the demo's generator sends them (no window or
    profile inputs), with an "is_fraud" label: each of `users` users buys at
    `rate_per_user_s` for `minutes` up to end_s (epoch seconds; default now),
    and ~1% of users have a fraud session: a burst of large online purchases
    a few seconds apart. In time order."""
    import time
    rng = np.random.default_rng(seed)
    end_s = end_s if end_s is not None else time.time()
    n = int(users * rate_per_user_s * minutes * 60)
    c, y = _draw(n, rng)
    ts = np.sort(rng.uniform(end_s - minutes * 60, end_s, n))
    user = rng.integers(1, users + 1, n)
    events = []
    for i in range(n):
        e = {"id": i, "user_id": int(user[i]), "event_time": round(float(ts[i]), 3)}
        for name in EVENT_INPUTS:
            v = float(c[name][i])
            dtype = FEATURES[NAMES.index(name)][1]
            e[name] = None if np.isnan(v) else bool(v) if dtype == "bool" else \
                int(v) if dtype == "int" else round(v, 3)
        e["is_fraud"] = int(y[i])
        events.append(e)
    for u in rng.choice(np.arange(1, users + 1), max(1, users // 100), replace=False):
        t = float(rng.uniform(end_s - minutes * 60, end_s - 120))
        for k in range(int(rng.integers(4, 9))):
            t += float(rng.exponential(8))
            events.append({"id": 0, "user_id": int(u), "event_time": round(t, 3),
                           "amount": round(float(rng.lognormal(5.5, 0.8)), 2),
                           "hour_of_day": int(time.gmtime(t).tm_hour), "day_of_week": 3,
                           "is_online": True, "is_international": bool(rng.random() < 0.4),
                           "card_present": False, "merchant_risk": round(float(rng.beta(3, 5)), 3),
                           "merchant_category": int(rng.integers(0, 20)),
                           "distance_from_home_km": round(float(rng.exponential(300)), 2),
                           "distance_from_last_txn_km": round(float(rng.exponential(200)), 2),
                           "amount_to_avg_ratio": round(float(rng.lognormal(2, 0.5)), 2),
                           "failed_logins_24h": int(rng.poisson(1)), "device_change": True,
                           "ip_risk": round(float(rng.beta(2, 6)), 3),
                           "country_mismatch": bool(rng.random() < 0.5),
                           "velocity_score": round(float(rng.uniform(20, 90)), 2),
                           "is_weekend": False, "is_night": True, "is_fraud": 1})
    events.sort(key=lambda e: e["event_time"])
    for i, e in enumerate(events):
        e["id"] = i
    return events


def windows(events):
    """Per event (in time order), the window inputs as the stream reads them
    before adding it: counts over 1 h and 24 h, the 24 h sum of amounts, the
    seconds since the user's previous transaction (None: none)."""
    from collections import deque
    state = {}
    out = []
    for e in events:
        times, amounts, last = state.setdefault(e["user_id"], (deque(), deque(), [None]))
        t = e["event_time"]
        while times and times[0] <= t - 86400:
            times.popleft()
            amounts.popleft()
        n1 = sum(1 for x in times if x > t - 3600)
        out.append((n1, len(times), round(sum(amounts), 2),
                    None if last[0] is None else t - last[0]))
        if e.get("amount") is not None:
            times.append(t)
            amounts.append(e["amount"])
        last[0] = t
    return out


def generate(n, seed=7):
    """n rows like the training data: (X, y)."""
    rng = np.random.default_rng(seed + 1)
    users = max(20, int(n / (RATE_PER_USER_S * 90 * 60)))
    events = history(users=users, minutes=90, seed=seed, end_s=1_764_583_200)
    win = windows(events)
    pick = rng.choice(len(events), min(n, len(events)), replace=False)  # any order
    c, _ = _draw(len(pick), rng)  # the profile columns, per row
    X = np.full((len(pick), len(NAMES)), np.nan, dtype=np.float32)
    for row, i in enumerate(pick):
        e = events[i]
        for j, name in enumerate(NAMES):
            if name in WINDOW_INPUTS:
                v = win[i][WINDOW_INPUTS.index(name)]
                if v is None:
                    v = FEATURES[j][4]  # the input's default, as serving applies it
            elif name in PROFILE_INPUTS:
                v = c[name][row]
            else:
                v = e.get(name)
            X[row, j] = np.nan if v is None else float(v)
    y = np.array([events[i]["is_fraud"] for i in pick], dtype=np.float32)
    return X, y
