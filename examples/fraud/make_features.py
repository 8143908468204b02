#!/usr/bin/python3
"""Writes the fraud demo's offline feature source: one user_profile row per
user (plus some older rows, to show that materialization keeps the latest),
with event timestamps over the last day.

  /usr/bin/python3 examples/fraud/make_features.py [--users 50000] [--out data/user_profile.csv]
"""
import argparse
import csv
import datetime as dt
import os
import random

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--users", type=int, default=50000)
ap.add_argument("--out", default=os.path.join(here, "data", "user_profile.csv"))
args = ap.parse_args()

rng = random.Random(123)
now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
os.makedirs(os.path.dirname(args.out), exist_ok=True)
countries = ["FR", "DE", "US", "GB", "ES", "IT", "NL", "BR", "IN", "JP"]
rows = []
for user in range(1, args.users + 1):
    account_age = rng.randint(1, 4000)
    profile = {
        "user_id": user,
        "avg_amount_30d": round(rng.lognormvariate(3.8, 0.7), 2),
        "account_age_days": account_age,
        "card_age_days": min(account_age, rng.randint(1, 2000)),
        "user_age": rng.randint(18, 90),
        "credit_limit": round(rng.lognormvariate(8.3, 0.6), -2),
        "utilization": round(rng.betavariate(2, 5), 3),
        "email_age_days": rng.randint(0, 5000),
        "chargebacks_365d": 1 if rng.random() < 0.05 else 0,
        "home_country": rng.choice(countries),
    }
    ts = now - dt.timedelta(seconds=rng.randint(60, 20 * 3600))
    if rng.random() < 0.2:  # an older, superseded profile
        older = dict(profile, avg_amount_30d=round(profile["avg_amount_30d"] * 3, 2))
        rows.append((ts - dt.timedelta(days=2), older))
    rows.append((ts, profile))
rng.shuffle(rows)
with open(args.out, "w", newline="") as f:
    w = csv.writer(f)
    cols = ["user_id", "event_timestamp"] + [c for c in rows[0][1] if c != "user_id"]
    w.writerow(cols)
    for ts, p in rows:
        w.writerow([p["user_id"], ts.strftime("%Y-%m-%dT%H:%M:%SZ")] + [p[c] for c in cols[2:]])
print(f"wrote {len(rows)} rows for {args.users} users to {args.out}")
