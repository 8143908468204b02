"""HTTP integration tests: a real `rtml serve` on loopback, real HTTP clients.

Covers the README's example against XGBoost's own prediction, every route,
every kind of bad input (status, reason and field), a burst of garbage, and
concurrent keep-alive clients.
"""
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import numpy as np
import xgboost as xgb

from harness import FRAUD, REPO, Server, fraud_demo_config, wait_for

FRAUD_MODEL = os.path.join(FRAUD, "models", "fraud", "1", "model.json")
TESTDATA_MODELS = os.path.join(REPO, "tests", "testdata", "models")


def readme_request():
    with open(os.path.join(FRAUD, "request.json")) as f:
        return json.load(f)


class FraudDemoTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.server = Server(config=fraud_demo_config(cls.dir.name))
        booster = xgb.Booster(model_file=FRAUD_MODEL)
        booster.set_param({"nthread": 1})
        cls.booster = booster
        status, models, _ = cls.server.request("GET", "/v1/models")
        assert status == 200, models
        cls.inputs = models["models"][0]["inputs"]

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.dir.cleanup()

    def stored(self, user_id):
        """The user's stored profile, read through the Feast-shaped endpoint."""
        status, resp, _ = self.server.request("POST", "/get-online-features", {
            "feature_service": "fraud_v1", "entities": {"user_id": [user_id]}})
        self.assertEqual(status, 200, resp)
        names = resp["metadata"]["feature_names"]
        return {n: r["values"][0] for n, r in zip(names, resp["results"])
                if r["statuses"][0] == "PRESENT" and n != "user_id"}

    def xgboost_probability(self, features):
        """XGBoost's prediction for a request row: stored features for its
        user_id, then defaults as model.yaml says, then missing."""
        if "user_id" in features:
            features = dict(self.stored(features["user_id"]), **features)
        row = []
        for spec in self.inputs:
            v = features.get(spec["name"], spec.get("default", math.nan))
            row.append(float(v) if v is not None else math.nan)
        return float(self.booster.inplace_predict(np.asarray([row], dtype=np.float32))[0])

    def test_readme_example_matches_xgboost(self):
        body = readme_request()
        status, resp, headers = self.server.request("POST", "/predict", body)
        self.assertEqual(status, 200, resp)
        self.assertEqual(resp["model"], "fraud")
        self.assertEqual(resp["version"], 1)
        self.assertAlmostEqual(resp["prediction"], self.xgboost_probability(body["features"]),
                               delta=1e-6)
        self.assertNotIn("user_age", resp["defaulted"])  # from the feature store
        self.assertIn("velocity_score", resp["defaulted"])
        self.assertEqual(resp["missing"], ["distance_from_last_txn_km"])
        self.assertIn("seconds_since_last_txn", resp["defaulted"])  # no transaction streamed yet
        self.assertEqual(resp["feature_store"], "ok")

    def test_random_rows_match_xgboost(self):
        rng = random.Random(5)
        for i in range(50):
            features = {"user_id": rng.randint(1, 600)}  # some unknown to the store
            for spec in self.inputs:
                if rng.random() < 0.2 and spec["name"] != "amount":
                    continue
                lo, hi = spec.get("min", 0), min(spec.get("max", 100), 5000)
                if spec["dtype"] == "bool":
                    features[spec["name"]] = rng.random() < 0.5
                elif spec["dtype"] == "int":
                    features[spec["name"]] = rng.randint(int(lo), int(hi))
                else:
                    features[spec["name"]] = rng.uniform(lo, hi)
            status, resp, _ = self.server.request("POST", "/predict", {"features": features})
            self.assertEqual(status, 200, resp)
            self.assertAlmostEqual(resp["prediction"], self.xgboost_probability(features),
                                   delta=1e-6)

    def test_every_predict_route_and_ordered_rows_agree(self):
        features = dict(self.stored(123), **readme_request()["features"])
        ordered = [features.get(s["name"], s.get("default")) for s in self.inputs]
        answers = []
        for path, body in [("/predict", {"features": features}),
                           ("/v1/models/fraud/predict", {"features": features}),
                           ("/v1/models/fraud/versions/1/predict", {"features": ordered})]:
            status, resp, _ = self.server.request("POST", path, body)
            self.assertEqual(status, 200, (path, resp))
            answers.append(resp["prediction"])
        # ordered rows carry no user_id: the stored values were sent explicitly
        self.assertEqual(len(set(answers)), 1, answers)

    def test_flat_body_is_one_row(self):
        features = readme_request()["features"]
        status, flat, _ = self.server.request("POST", "/predict", dict(features, id="t-9"))
        self.assertEqual(status, 200, flat)
        self.assertEqual(flat["id"], "t-9")
        wrapped = self.server.request("POST", "/predict", {"features": features})[1]
        self.assertEqual(flat["prediction"], wrapped["prediction"])

    def test_batch_returns_one_prediction_per_instance(self):
        features = readme_request()["features"]
        low = dict(features, amount=12.0, ip_risk=0.01, merchant_risk=0.01, device_change=False)
        status, resp, _ = self.server.request(
            "POST", "/predict", {"instances": [features, low, features], "id": 42})
        self.assertEqual(status, 200, resp)
        self.assertEqual(resp["id"], 42)
        p = resp["predictions"]
        self.assertEqual(len(p), 3)
        self.assertEqual(p[0], p[2])
        self.assertLess(p[1], p[0])
        self.assertEqual(len(resp["defaulted"]), 3)

    def test_expect_100_continue_is_answered_before_the_body(self):
        body = json.dumps(readme_request()).encode()
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
            self.assertTrue(s.recv(4096).startswith(b"HTTP/1.1 100 Continue"))
            s.sendall(body)
            reply = s.recv(65536)
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply[:80])
        self.assertIn(b'"prediction"', reply)

    def test_models_listing_describes_inputs(self):
        status, resp, _ = self.server.request("GET", "/v1/models")
        self.assertEqual(status, 200)
        self.assertEqual(resp["default_model"], "fraud")
        m = resp["models"][0]
        self.assertEqual((m["name"], m["default_version"]), ("fraud", 1))
        self.assertEqual([v["version"] for v in m["versions"]], [1])
        self.assertEqual(len(m["inputs"]), 30)
        amount = m["inputs"][0]
        self.assertEqual(amount, {"name": "amount", "dtype": "float", "min": 0, "max": 50000,
                                  "required": True})
        status, one, _ = self.server.request("GET", "/v1/models/fraud")
        self.assertEqual((status, one["name"]), (200, "fraud"))

    def test_request_ids_are_echoed_or_generated(self):
        _, _, headers = self.server.request("POST", "/predict", readme_request(),
                                            {"X-Request-Id": "trace-42"})
        self.assertEqual(headers["X-Request-Id"], "trace-42")
        ids = {self.server.request("GET", "/healthz")[2]["X-Request-Id"] for _ in range(5)}
        self.assertEqual(len(ids), 5)

    def test_stats_report_windows_of_throughput_and_percentiles(self):
        for _ in range(20):
            self.server.request("POST", "/predict", readme_request())
        self.server.request("POST", "/predict", {"features": {"amount": "x"}})
        status, stats, _ = self.server.request("GET", "/v1/stats")
        self.assertEqual(status, 200)
        http = next(s for s in stats["series"] if s["path"] == "http" and s["model"] == "fraud")
        for window in ("10s", "1m", "5m"):
            w = http[window]
            self.assertGreaterEqual(w["count"], 20)
            self.assertGreater(w["rate_per_s"], 0)
            self.assertTrue(0 < w["p50_ms"] <= w["p95_ms"] <= w["p99_ms"] <= w["max_ms"], w)
        self.assertGreaterEqual(stats["http_errors"]["1m"]["count"], 1)
        # The fraud model ships a drift reference: PSI is computed once the
        # window holds 200 rows.
        row = readme_request()["features"]
        self.assertEqual(self.server.request("POST", "/predict",
                                             {"instances": [row] * 200})[0], 200)
        stats = self.server.request("GET", "/v1/stats")[1]
        series = {d["series"]: d["psi"] for d in stats["drift"] if d["model"] == "fraud"}
        self.assertIn("prediction", series)
        self.assertIn("amount", series)
        self.assertTrue(all(v >= 0 for v in series.values()))

    def test_health_ready_and_metrics_accepted_by_promtool(self):
        self.assertEqual(self.server.request("GET", "/healthz")[:2], (200, {"status": "ok"}))
        status, ready, _ = self.server.request("GET", "/readyz")
        self.assertEqual((status, ready["ready"]), (200, True))
        self.server.request("POST", "/predict", readme_request())
        self.server.request("POST", "/predict", {"features": {"amount": "x"}})
        status, text, headers = self.server.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        self.assertRegex(
            text, r'rtml_requests_total\{model="fraud",version="1",path="http",outcome="ok"\} [1-9]')
        self.assertRegex(
            text, r'rtml_requests_total\{model="fraud",version="1",path="http",outcome="error"\} [1-9]')
        self.assertRegex(text, r'rtml_request_errors_total\{reason="wrong_type"\} [1-9]')
        self.assertIn('rtml_request_duration_seconds_bucket{model="fraud",version="1",path="http",'
                      'le="+Inf"}', text)
        for name in ("rtml_model_duration_seconds_count", "rtml_batch_rows_bucket",
                     "rtml_process_cpu_seconds", "rtml_process_open_fds",
                     "rtml_feature_store_read_duration_seconds_count", "rtml_drift_psi"):
            self.assertIn(name, text)
        check = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                               capture_output=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)


BAD_INPUTS = [
    # (method, path, body, headers, status, reason, field)
    ("POST", "/predict", '{"features": {"amount": 1,}}', None, 400, "malformed_json", None),
    ("POST", "/predict", '{"features": ', None, 400, "malformed_json", None),
    ("POST", "/predict", "not json", None, 400, "malformed_json", None),
    ("POST", "/predict", "", None, 400, "malformed_json", None),
    ("POST", "/predict", '{"features": {"amount": 1}}', {"Content-Type": "text/plain"}, 415,
     "unsupported_media_type", "Content-Type"),
    ("POST", "/predict", '{"features": {"amount": 1}}',
     {"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", None),
    ("POST", "/v1/models/nope/predict", '{"features": {"amount": 1}}', None, 404,
     "unknown_model", None),
    ("POST", "/v1/models/fraud/versions/7/predict", '{"features": {"amount": 1}}', None, 404,
     "unknown_version", None),
    ("POST", "/v1/models/fraud/versions/x/predict", '{"features": {"amount": 1}}', None, 404,
     "unknown_version", None),
    ("POST", "/predict", '{"features": {"amount": 1}}', None, 400, "missing_entity_key",
     "features.user_id"),
    ("POST", "/predict", '{"features": {"user_id": "u1", "amount": 1}}', None, 400,
     "bad_entity_key", "features.user_id"),
    ("POST", "/predict", '{"features": {"amount": "12"}}', None, 400, "wrong_type",
     "features.amount"),
    ("POST", "/predict", '{"features": {"amount": 1, "is_online": "yes"}}', None, 400,
     "wrong_type", "features.is_online"),
    ("POST", "/predict", '{"features": {"amount": 1, "hour_of_day": 2.5}}', None, 400,
     "wrong_type", "features.hour_of_day"),
    ("POST", "/predict", '{"features": {"amount": 1, "hour_of_day": 24}}', None, 400,
     "out_of_range", "features.hour_of_day"),
    ("POST", "/predict", '{"features": {"amount": -3}}', None, 400, "out_of_range",
     "features.amount"),
    ("POST", "/predict", '{"features": {"user_id": 1, "hour_of_day": 3}}', None, 400,
     "missing_feature", "features.amount"),
    ("POST", "/predict", '{"features": {"amount": 1, "colour": "red"}}', None, 400,
     "unknown_feature", "features.colour"),
    ("POST", "/predict", '{"features": [1, 2, 3]}', None, 400, "wrong_length", "features"),
    ("POST", "/predict", '{"instances": [{"user_id": 1, "amount": 1}, {"amount": "x"}]}', None,
     400, "wrong_type", "instances[1].amount"),
    ("POST", "/predict", '{"rows": []}', None, 400, "unknown_feature", "rows"),
    ("POST", "/predict", '{"id": 1}', None, 400, "bad_request", None),
    ("GET", "/predict", None, None, 405, "method_not_allowed", None),
    ("DELETE", "/v1/models", None, None, 405, "method_not_allowed", None),
    ("GET", "/nowhere", None, None, 404, "not_found", None),
]


class BadInputTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.config = fraud_demo_config(
            cls.dir.name, extra="http: {max_body_bytes: 4096}\nscoring: {max_batch_size: 4}\n")
        cls.server = Server(config=cls.config)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.dir.cleanup()

    def assertError(self, status, resp, want_status, reason, field=None):
        self.assertEqual(status, want_status, resp)
        self.assertIsInstance(resp, dict, resp)
        err = resp["error"]
        self.assertEqual(err["code"], want_status)
        self.assertEqual(err["reason"], reason, err)
        self.assertTrue(err["message"], err)
        if field:
            self.assertEqual(err.get("field"), field, err)

    def test_each_bad_input_names_the_problem(self):
        for method, path, body, headers, want, reason, field in BAD_INPUTS:
            with self.subTest(path=path, body=body, headers=headers):
                status, resp, _ = self.server.request(method, path, body, headers)
                self.assertError(status, resp, want, reason, field)

    def test_malformed_json_gives_the_byte_offset(self):
        status, resp, _ = self.server.request("POST", "/predict", '{"features": {"amount" 1}}')
        self.assertError(status, resp, 400, "malformed_json")
        self.assertIn("at byte 23", resp["error"]["message"])

    def test_body_over_the_limit_is_413(self):
        body = json.dumps({"features": {"amount": 1}, "id": "x" * 5000})
        status, resp, _ = self.server.request("POST", "/predict", body)
        self.assertError(status, resp, 413, "body_too_large")

    def test_batch_over_the_maximum_is_413(self):
        status, resp, _ = self.server.request("POST", "/predict",
                                              {"instances": [{"user_id": 1, "amount": 1}] * 5})
        self.assertError(status, resp, 413, "batch_too_large", "instances")
        self.assertIn("maximum of 4", resp["error"]["message"])

    def test_wrong_method_says_which_is_allowed(self):
        status, resp, headers = self.server.request("GET", "/v1/models/fraud/predict")
        self.assertError(status, resp, 405, "method_not_allowed")
        self.assertEqual(headers.get("Allow"), "POST")

    def test_garbage_burst_never_gets_5xx_and_server_keeps_serving(self):
        rng = random.Random(1234)
        valid = json.dumps(readme_request())
        bodies = []
        for i in range(600):
            kind = i % 6
            if kind == 0:
                bodies.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
            elif kind == 1:
                bodies.append(valid[:rng.randrange(len(valid))].encode())
            elif kind == 2:
                b = bytearray(valid.encode())
                for _ in range(rng.randrange(1, 6)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
                bodies.append(bytes(b))
            elif kind == 3:
                d = rng.randrange(1, 3000)
                bodies.append(("[" * d + "]" * d).encode())
            elif kind == 4:
                bodies.append(json.dumps({"features": {"amount": rng.choice(
                    [1e308, -0.0, 1e-320, 2**63, "∞", None, [], {}, True])}}).encode())
            else:
                bodies.append(json.dumps({"instances": [rng.choice(
                    [1, "a", None, [], {}, {"amount": 5}, {"user_id": 7, "amount": 5}])
                    for _ in range(rng.randrange(0, 7))]}).encode())
        conn = self.server.connection()
        counts = {}
        for body in bodies:
            try:
                status, resp, _ = self.server.request("POST", "/predict", body, conn=conn)
            except (ConnectionError, OSError):  # a server may close after a bad request
                conn.close()
                conn = self.server.connection()
                continue
            counts[status] = counts.get(status, 0) + 1
            self.assertLess(status, 500, (body[:80], resp))
            if status != 200:
                self.assertIn("error", resp)
        conn.close()
        self.assertGreater(counts.get(400, 0), 300, counts)
        # Raw non-HTTP bytes on a socket: answered 400 or closed, never a crash.
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=5) as s:
            s.sendall(b"\x00\xff GARBAGE \r\n\r\n" * 10)
            reply = s.recv(4096)
            self.assertTrue(reply == b"" or reply.startswith(b"HTTP/1.1 400"), reply[:60])
        self.assertTrue(self.server.alive())
        status, resp, _ = self.server.request("POST", "/predict", valid)
        self.assertEqual(status, 200, resp)


class PredictionLogTest(unittest.TestCase):
    def test_sampled_predictions_are_logged_as_json_lines(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "predictions.jsonl")
            config = fraud_demo_config(
                tmp, store="memory",
                extra=f"log: {{predictions: {{rate: 0.5, file: {log}}}}}\n")
            server = Server(config=config)
            try:
                for i in range(400):
                    server.request("POST", "/predict", {"user_id": i, "amount": 10 + i, "id": i})
            finally:
                server.stop()
            with open(log) as f:
                lines = [json.loads(line) for line in f]
        self.assertTrue(100 < len(lines) < 300, len(lines))  # about half
        first = lines[0]
        self.assertEqual(first["path"], "http")
        self.assertEqual(first["request"]["id"], first["response"]["id"])
        self.assertIn("prediction", first["response"])
        self.assertRegex(first["time"], r"^\d{4}-\d\d-\d\dT")


class DriftTest(unittest.TestCase):
    """PSI against the fraud model's training-time reference, end to end: rows
    like the training data stay under drift.warn, shifted rows pass drift.alert,
    are logged and exported."""

    @staticmethod
    def rows(seed, shift=False):
        import sys
        sys.path.insert(0, FRAUD)
        import transactions
        X, _ = transactions.generate(6000, seed=seed)
        if shift:  # a new merchant mix: bigger amounts from riskier IPs
            X[:, transactions.NAMES.index("amount")] *= 6
            X[:, transactions.NAMES.index("ip_risk")] += 0.3
        return [[None if math.isnan(v) else float(v) for v in row] for row in X]

    def score_and_read_drift(self, rows):
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(config=fraud_demo_config(tmp, store="memory"))
            try:
                for i in range(0, len(rows), 500):
                    status, body, _ = server.request("POST", "/predict",
                                                     {"instances": rows[i:i + 500]})
                    self.assertEqual(status, 200, body)
                stats = server.request("GET", "/v1/stats")[1]
                metrics = server.request("GET", "/metrics")[1]
            finally:
                server.stop()
        psi = {d["series"]: d["psi"] for d in stats["drift"] if d["model"] == "fraud"}
        self.assertEqual(len(psi), 31, psi)  # 30 inputs and the prediction
        return psi, metrics, server.log

    def test_training_like_rows_stay_under_warn(self):
        psi, _, log = self.score_and_read_drift(self.rows(seed=1234))
        self.assertLess(max(psi.values()), 0.1, psi)
        self.assertFalse([l for l in log if "[drift]" in l], log)

    def test_shifted_rows_pass_the_alert_threshold(self):
        psi, metrics, log = self.score_and_read_drift(self.rows(seed=1234, shift=True))
        self.assertGreater(psi["amount"], 0.25, psi)
        self.assertGreater(psi["ip_risk"], 0.25, psi)
        self.assertGreater(psi["prediction"], 0.25, psi)
        self.assertLess(psi["hour_of_day"], 0.1, psi)  # untouched inputs stay put
        exported = re.search(r'rtml_drift_psi\{model="fraud",version="1",series="amount"\} (\S+)',
                             metrics)
        self.assertGreater(float(exported.group(1)), 0.25, metrics)
        warnings = [l for l in log if "[drift]" in l and "PSI past alert 0.25: " in l]
        self.assertTrue(warnings, log)
        self.assertIn("model=fraud version=1", warnings[0])


class DrainTest(unittest.TestCase):
    """SIGTERM: /readyz turns 503 at once, requests are still answered for
    http.drain_s, then the process exits 0; a second signal stops at once."""

    def start(self, tmp):
        config = fraud_demo_config(tmp, store="memory",
                                   extra="http: {drain_s: 1.5, shutdown_grace_s: 5}\n")
        return Server(config=config)

    def test_sigterm_drains_then_exits_cleanly(self):
        with tempfile.TemporaryDirectory() as tmp:
            server = self.start(tmp)
            keep_alive = server.connection()
            self.assertEqual(server.request("GET", "/healthz", conn=keep_alive)[0], 200)
            t0 = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            status, body, _ = wait_for(lambda: (lambda r: r if r[0] == 503 else None)(
                server.request("GET", "/readyz")), 2, "/readyz to turn 503")
            self.assertLess(time.monotonic() - t0, 0.5)
            self.assertTrue(body["reason"].startswith("draining"), body)
            for conn in (keep_alive, None):  # still answered, old connection and new
                status, resp, _ = server.request("POST", "/predict",
                                                 {"user_id": 1, "amount": 10}, conn=conn)
                self.assertEqual(status, 200, resp)
            self.assertTrue(server.alive())
            code = server.proc.wait(10)
            elapsed = time.monotonic() - t0
            self.assertEqual(code, 0, "".join(server.log))
            self.assertGreaterEqual(elapsed, 1.5)
            self.assertLess(elapsed, 1.5 + 5)
            self.assertTrue(any("draining for 1.5 s" in l for l in server.log), server.log)
            server.stop()

    def test_a_second_signal_stops_at_once(self):
        with tempfile.TemporaryDirectory() as tmp:
            server = self.start(tmp)
            server.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: server.request("GET", "/readyz")[0] == 503, 2, "draining")
            t0 = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            code = server.proc.wait(5)
            self.assertLess(time.monotonic() - t0, 1.0)
            self.assertEqual(code, 1)
            server.stop()


class LoggingTest(unittest.TestCase):
    def test_json_logs_carry_component_model_and_request_id(self):
        with tempfile.TemporaryDirectory() as tmp:
            config = fraud_demo_config(tmp, store="memory",
                                       extra="log: {level: debug, format: json}\n")
            server = Server(config=config)
            try:
                ok = server.request("POST", "/predict", {"user_id": 1, "amount": 5})
                self.assertEqual(ok[0], 200)
                status, _, headers = server.request(
                    "POST", "/predict", {"amount": "x\"y"}, headers={"X-Request-Id": "trace-me-1"})
                self.assertEqual(status, 400)
                self.assertEqual(headers["X-Request-Id"], "trace-me-1")
                wait_for(lambda: any("trace-me-1" in line for line in server.log), 10,
                         "the refusal's log line")
            finally:
                server.stop()
            lines = [json.loads(line) for line in server.log]  # every line is one JSON object
        for line in lines:
            self.assertEqual(set(line) - {"model", "version", "request_id"},
                             {"time", "level", "component", "msg"}, line)
            self.assertRegex(line["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        loaded = [l for l in lines if l.get("model") == "fraud" and "backend" in l["msg"]]
        self.assertEqual([(l["component"], l["version"]) for l in loaded], [("models", 1)])
        refusal = [l for l in lines if l.get("request_id") == "trace-me-1"]
        self.assertEqual(len(refusal), 1, lines)
        self.assertEqual((refusal[0]["component"], refusal[0]["level"]), ("http", "debug"))
        self.assertEqual(refusal[0]["model"], "fraud")  # /predict: the default model
        self.assertIn("POST /predict -> 400", refusal[0]["msg"])
        self.assertIn('"reason":"wrong_type"', refusal[0]["msg"])
        # The answered request has no line of its own, even at DEBUG.
        self.assertEqual(sum("/predict ->" in l["msg"] and l["component"] == "http"
                             for l in lines), 1)

    def test_no_line_per_request_at_info(self):
        with tempfile.TemporaryDirectory() as tmp:
            server = Server(config=fraud_demo_config(tmp, store="memory"))
            try:
                before = len(server.log)
                for i in range(50):
                    server.request("POST", "/predict", {"user_id": i, "amount": 5})
                    server.request("POST", "/predict", "not json")
                    server.request("GET", "/nowhere")
                self.assertEqual(server.request("GET", "/readyz")[0], 200)
                self.assertEqual(server.log[before:], [])
            finally:
                server.stop()


class ConcurrencyTest(unittest.TestCase):
    def test_concurrent_keepalive_clients_get_consistent_answers(self):
        tmp = tempfile.TemporaryDirectory()
        server = Server(config=fraud_demo_config(tmp.name))
        try:
            body = json.dumps(readme_request())
            expected = server.request("POST", "/predict", body)[1]["prediction"]
            errors = []

            def client():
                conn = server.connection()
                for _ in range(200):
                    status, resp, _ = server.request("POST", "/predict", body, conn=conn)
                    if status != 200 or resp["prediction"] != expected:
                        errors.append((status, resp))
                conn.close()

            threads = [threading.Thread(target=client) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            text = server.request("GET", "/metrics")[1]
            self.assertRegex(text, r'rtml_requests_total\{model="fraud",version="1",path="http",'
                                   r'outcome="ok"\} 1601\n')
        finally:
            self.assertEqual(server.stop(), 0)
            tmp.cleanup()


class MultiModelTest(unittest.TestCase):
    def test_versions_backends_and_classes(self):
        server = Server("--models", TESTDATA_MODELS)
        try:
            row = {"features": {"f1": 0.5, "f2": 1.0, "f3": -2.0}}
            # Several models and no models.default: POST /predict says what to do.
            status, resp, _ = server.request("POST", "/predict", row)
            self.assertEqual((status, resp["error"]["reason"]), (404, "unknown_model"))
            self.assertIn("models.default", resp["error"]["message"])
            native = server.request("POST", "/v1/models/binary/versions/1/predict", row)[1]
            reference = server.request("POST", "/v1/models/binary/predict", row)[1]
            self.assertEqual(reference["version"], 2)
            self.assertAlmostEqual(native["prediction"], reference["prediction"], delta=1e-6)
            status, classes, _ = server.request("POST", "/v1/models/iris/predict", row)
            self.assertEqual(status, 200, classes)
            self.assertEqual(sorted(classes["prediction"]), ["high", "low", "mid"])
            self.assertAlmostEqual(sum(classes["prediction"].values()), 1.0, places=5)
            status, reg, _ = server.request("POST", "/v1/models/reg/predict",
                                            {"features": {"f1": 1, "extra": 3}})
            self.assertEqual(status, 200, reg)  # reg ignores unknown features
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
