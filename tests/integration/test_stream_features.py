"""Stream feature views end to end on `rtml broker` (librdkafka's mock
cluster): rtml computes windowed aggregations from the scored topic, and
every value it serves, keeps or writes offline equals an independent Python
computation from the same events (window_oracle.py), across late,
out-of-order and re-delivered events, window edges, entities without events,
and a SIGKILL of the worker mid-stream."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import window_oracle as wo
from harness import REPO, RTML, Server, run_rtml, wait_for
from test_features import RedisServer
from test_stream import Broker

T0 = 1_764_583_200 * wo.US  # 2026-12-01T10:00:00Z
LATENESS_S = 120
# (output, column, function, window, tile, n)
AGGS = [
    ("amount_count_10m", "amount", "count", "10m", None, 0),
    ("amount_count_1h", "amount", "count", "1h", None, 0),
    ("amount_sum_10m", "amount", "sum", "10m", None, 0),
    ("amount_mean_1h", "amount", "mean", "1h", None, 0),
    ("amount_min_10m", "amount", "min", "10m", None, 0),
    ("amount_max_10m", "amount", "max", "10m", "1m", 0),
    ("amount_stddev_1h", "amount", "stddev", "1h", None, 0),
    ("merchants_1h", "merchant", "count_distinct", "1h", None, 0),
    ("amount_last", "amount", "last", None, None, 0),
    ("amount_last_3", "amount", "last_n", None, None, 3),
    ("seconds_since_last", "__ts__", "seconds_since", None, None, 0),
]
SERVICE = ["amount_count_10m", "amount_sum_10m", "amount_max_10m", "amount_mean_1h",
           "seconds_since_last", "merchants_1h"]


def features_yaml(events_path):
    lines = []
    for out, col, fn, window, tile, n in AGGS:
        col = "event_time" if col == "__ts__" else col
        fn = "last" if fn == "seconds_since" else fn
        entry = f"{{column: {col}, function: {fn}"
        entry += f", windows: [{window}]" if window else ""
        entry += f", tile: {tile}" if tile else ""
        entry += f", n: {n}" if n else ""
        entry += ", as: merchants_1h" if out == "merchants_1h" else ""
        lines.append(f"      - {entry}}}")
    return f"""project: aggtest
entities:
  - {{name: user, join_key: user_id, dtype: int64}}
stream_feature_views:
  - name: user_txn
    entities: [user]
    source: {{timestamp_field: event_time, path: {events_path}}}
    allowed_lateness_s: {LATENESS_S}
    aggregations:
""" + "\n".join(lines) + """
feature_services:
  - name: txn
    features: [""" + ", ".join(f"user_txn:{s}" for s in SERVICE) + "]\n"


def expand(name):
    """Output names in layout order (last_n gives n)."""
    out = []
    for o, _, fn, _, _, n in AGGS:
        out += [f"{o}_{j}" for j in range(1, n + 1)] if fn == "last_n" else [o]
    return out


SLOTS = wo.ring_slots([(wo.parse_duration(w), wo.parse_duration(tile) if tile else 0)
                       for _, _, _, w, tile, _ in AGGS if w], LATENESS_S * wo.US)


def oracle(events, t):
    """{output: value} at t for one entity's events [(ts_us, values)]."""
    got = {}
    for out, col, fn, window, tile, n in AGGS:
        w_us, t_us = (wo.parse_duration(window) if window else 0), (wo.parse_duration(tile) if tile else 0)
        v = wo.value(events, t, col, fn, w_us, t_us, n, LATENESS_S * wo.US,
                     SLOTS.get(t_us or wo.default_tile(w_us)) if window else None)
        if fn == "last_n":
            for j in range(n):
                got[f"{out}_{j + 1}"] = (v[j], fn)
        else:
            got[out] = (v, fn)
    return got


def make_events(n_users=40, n=1200, seed=11):
    """Events in produce order: mostly ascending time with jitter (out of
    order; some later than the allowed lateness), on tile edges, some
    without an amount, a few bad ones."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        user = rng.randrange(n_users)
        ts = T0 + i * 3 * wo.US + rng.choice([0, 0, 0, -rng.randrange(200), rng.randrange(30)]) * wo.US
        if i % 50 == 7:
            ts = (ts // (60 * wo.US)) * 60 * wo.US  # on a minute edge
        e = {"id": i, "user_id": user, "event_time": ts / 1e6,
             "amount": round(rng.lognormvariate(3, 1), 2), "merchant": f"m{rng.randrange(8)}"}
        if i % 41 == 0:
            e["amount"] = None
        if i % 97 == 13:
            e["amount"] = "ten"  # bad: a string where sum needs a number
        if i % 211 == 5:
            del e["user_id"]     # bad: no entity
        out.append(e)
    return out


def valid(e):
    return "user_id" in e and not isinstance(e.get("amount"), str)


def per_user(events):
    by = {}
    for e in events:
        if valid(e):
            by.setdefault(e["user_id"], []).append(
                (int(round(e["event_time"] * 1e6)), {"amount": e["amount"],
                                                     "merchant": e["merchant"]}))
    return by


class StreamFeaturesTest(unittest.TestCase):
    def start_broker(self):
        return Broker(partitions=4)

    def store_config(self):
        return "  store: rocksdb\n  rocksdb: {path: online}\n"

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="rtml-aggs-")
        self.events = make_events()
        self.broker = self.start_broker()
        self.events_path = os.path.join(self.dir, "events.jsonl")
        with open(self.events_path, "w") as f:
            for e in self.events:
                f.write(json.dumps(e) + "\n")
        with open(os.path.join(self.dir, "features.yaml"), "w") as f:
            f.write(features_yaml(self.events_path))
        models = os.path.join(self.dir, "models", "agg", "1")
        os.makedirs(models)
        with open(os.path.join(models, "model.yaml"), "w") as f:
            f.write("backend: native\nfeature_service: txn\noutput: {kind: probability}\n"
                    f"file: {REPO}/tests/testdata/parity/xgb-debian/binary_logistic.json\n"
                    "inputs:\n" + "".join(f"  - {{name: {s}, default: 0}}\n" for s in SERVICE))
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        self.broker.stop()
        if not os.environ.get("RTML_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def config(self, served_log):
        path = os.path.join(self.dir, "rtml.yaml")
        with open(path, "w") as f:
            f.write(f"models: {{repository: {self.dir}/models, default: agg}}\n"
                    "features:\n  definitions: features.yaml\n" + self.store_config() +
                    f"  served_log: {{rate: 1.0, file: {served_log}}}\n"
                    "scoring: {unknown_features: ignore}\n"  # events carry amount, merchant
                    "kafka: {max_batch: 25}\n")
        return path

    def serve(self, served_log):
        s = Server("--brokers", self.broker.bootstrap, config=self.config(served_log))
        self.servers.append(s)
        return s

    def produce(self, events):
        self.broker.produce("ml-features", [(str(e.get("user_id", "none")), json.dumps(e))
                                            for e in events])

    def online(self, server, users, at_us):
        body = {"features": [f"user_txn:{n}" for n in expand("")], "entities": {"user_id": users},
                "at": at_us / 1e6}
        status, r, _ = server.request("POST", "/v1/features/get-online-features", body)
        self.assertEqual(status, 200, r)
        names = r["metadata"]["feature_names"]
        return {u: {names[c]: r["results"][c]["values"][row] for c in range(1, len(names))}
                for row, u in enumerate(users)}

    def mismatches(self, got, by_user, at_us):
        bad = []
        for user, values in got.items():
            want = oracle(by_user.get(user, []), at_us)
            for name, (w, fn) in want.items():
                if not wo.close(values[name], w, fn):
                    bad.append((user, name, values[name], w))
        return bad

    def test_aggregates_equal_an_independent_computation_across_a_sigkill(self):
        by_user = per_user(self.events)
        n_bad = sum(not valid(e) for e in self.events)
        first = self.serve(os.path.join(self.dir, "served-1.jsonl"))
        self.produce(self.events[:400])
        wait_for(lambda: first.request("GET", "/v1/stats")[1]["stream"]["events_in"] >= 400, 60,
                 "the first 400 events")
        self.produce(self.events[400:800])
        first.proc.send_signal(signal.SIGKILL)  # mid-stream: state written, offsets not all committed
        first.proc.wait(10)
        second = self.serve(os.path.join(self.dir, "served-2.jsonl"))
        self.produce(self.events[800:])
        users = list(range(41))  # user 40 has no events
        t_end = max(ts for evs in by_user.values() for ts, _ in evs) + wo.US

        def converged():
            return not self.mismatches(self.online(second, users, t_end), by_user, t_end)
        try:
            wait_for(converged, 60, "the windows to hold every event once")
        except Exception:
            self.fail(self.mismatches(self.online(second, users, t_end), by_user, t_end)[:10])
        for at in (t_end + 11 * 60 * wo.US, t_end - 90 * wo.US):  # 10m windows empty; inside lateness
            self.assertEqual(self.mismatches(self.online(second, users, at), by_user, at), [])
        metrics = second.request("GET", "/metrics")[1]
        self.assertIn('rtml_aggregation_events_total{view="user_txn",outcome="duplicate"}', metrics)
        self.assertRegex(metrics, r'rtml_aggregation_events_total\{view="user_txn",outcome="late"\} [1-9]')
        dup = re.search(r'rtml_aggregation_events_total\{view="user_txn",outcome="duplicate"\} (\d+)',
                        metrics).group(1)
        print(f"\n{len(self.events)} events, SIGKILL mid-stream: {dup} re-delivered event(s) "
              "skipped by the restarted worker")
        wait_for(lambda: sum("bad_aggregation_event" in h for h in
                             self.broker.read_all("ml-features-dlq", "%h\n")) >= n_bad, 30,
                 "a dead letter naming the reason for every bad event")
        second.stop()

        # Every value served while scoring (each event read at its own time,
        # on the events before it) equals the computation from those events.
        served = []
        for name in ("served-1.jsonl", "served-2.jsonl"):
            with open(os.path.join(self.dir, name)) as f:
                text = f.read()
            lines = text.split("\n")
            served += [json.loads(l) for l in lines[:-1] if l]  # a SIGKILL may cut the last
        http_reads = {t_end, t_end + 11 * 60 * wo.US, t_end - 90 * wo.US}
        scored = [r for r in served if r["seen"] and r["at_us"] not in http_reads]
        self.assertGreater(len(scored), 800)  # the stream's own reads, at each event's time
        wrong = []
        for r in scored:
            evs = by_user[int(r["entity"])][:r["seen"]]
            want = oracle(evs, r["at_us"])
            for name, (w, fn) in want.items():
                if not wo.close(r["values"][name], w, fn):
                    wrong.append((r, name, w))
        self.assertEqual([(r["entity"], r["at_us"], r["seen"], name, r["values"][name], w) for r, name, w in wrong[:8]], [], len(wrong))
        with open(os.path.join(self.dir, "served.jsonl"), "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in served))
        config = self.config(os.path.join(self.dir, "unused.jsonl"))
        r = run_rtml("features", "historical", "--config", config, "--replay",
                     os.path.join(self.dir, "served.jsonl"))
        self.assertIn(f"{len(served)} served record(s) replayed", r.stdout)
        self.assertIn(": 0 mismatch(es)", r.stdout)

        # The training set from the same events has, row by row, the values
        # the stream read for that event (before adding it).
        out = os.path.join(self.dir, "train.csv")
        run_rtml("features", "historical", "--config", config, "--entities", self.events_path,
                 "--service", "txn", "--out", out, "--timestamp-field", "event_time")
        import csv
        with open(out) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual(len(rows), len(self.events))
        seen = {}
        checked = 0
        for e, row in zip(self.events, rows):
            if "user_id" not in e:
                continue
            u = e["user_id"]
            ts = int(round(e["event_time"] * 1e6))
            want = oracle(by_user.get(u, [])[:seen.get(u, 0)], ts)
            for name in SERVICE:
                w, fn = want[name]
                got = row[name]
                if fn == "count" and w == 0 and got == "0":
                    continue
                self.assertTrue(wo.close(float(got) if got != "" else None, w, fn),
                                (e, name, got, w))
            checked += 1
            if valid(e):
                seen[u] = seen.get(u, 0) + 1
        self.assertGreater(checked, 1100)

    def test_bad_definitions_and_writes_are_refused_clearly(self):
        config = self.config(os.path.join(self.dir, "served.jsonl"))
        server = Server(config=config)
        self.servers.append(server)
        status, body, _ = server.request("POST", "/push", {
            "push_source_name": "user_txn", "df": {"user_id": [1], "amount_count_10m": [3]}})
        self.assertEqual(status, 400, body)
        self.assertIn("stream feature view", json.dumps(body))
        status, body, _ = server.request("POST", "/v1/features/get-online-features", {
            "features": ["user_txn:amount_count_10m"], "entities": {"user_id": [1]},
            "at": "yesterday"})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["field"], "at")
        server.stop()
        path = os.path.join(self.dir, "features.yaml")
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace("feature_services:", "  - name: broken\n    entities: [user]\n"
                                 "    aggregations:\n"
                                 "      - {column: amount, function: median, windows: [1h]}\n"
                                 "feature_services:"))
        r = run_rtml("features", "list", "--config", config, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("median", r.stdout + r.stderr)


class RedisStreamFeaturesTest(StreamFeaturesTest):
    """The same on Redis, the store replicas share: state and offsets in one
    MULTI/EXEC, so a SIGKILL mid-stream still counts every event once."""
    test_bad_definitions_and_writes_are_refused_clearly = None

    def setUp(self):
        self.redis = RedisServer()
        self.addCleanup(self.redis.stop)
        super().setUp()

    def store_config(self):
        return f"  store: redis\n  redis: {{port: {self.redis.port}}}\n"


if __name__ == "__main__":
    unittest.main(verbosity=2)
