"""Feature-store integration tests: a real redis-server on a free loopback port
and RocksDB in a temporary folder, behind a real `rtml serve`, driven over HTTP
in Feast's request shapes and through the `rtml features` CLI."""
import json
import os
import socket
import subprocess
import tempfile
import time
import unittest

from harness import FRAUD, Server, fraud_demo_config, free_port, run_rtml



class RedisServer:
    """redis-server on a free loopback port, no persistence; ready when PING answers."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = subprocess.run(["redis-cli", "-p", str(self.port), "PING"], capture_output=True,
                               text=True)
            if r.stdout.strip() == "PONG":
                return
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                              text=True, check=True).stdout

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def push_body(rows, view="user_profile_push"):
    cols = ["user_id", "event_timestamp", "avg_amount_30d", "account_age_days", "card_age_days",
            "user_age", "credit_limit", "utilization", "email_age_days", "chargebacks_365d",
            "home_country"]
    return {"push_source_name": view, "to": "online",
            "df": {c: [r.get(c) for r in rows] for c in cols}}


def profile(user, ts, avg=50.0, **kw):
    row = {"user_id": user, "event_timestamp": ts, "avg_amount_30d": avg, "account_age_days": 100,
           "card_age_days": 50, "user_age": 30, "credit_limit": 2000.0, "utilization": 0.2,
           "email_age_days": 400, "chargebacks_365d": 0, "home_country": "FR"}
    row.update(kw)
    return row


def iso(seconds_ago):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))


class FeatureStoreHttpTest:
    """Shared expectations, run once per backend (subclasses set up `server`)."""

    def get(self, users, features=("user_profile:avg_amount_30d", "user_profile:home_country")):
        status, resp, _ = self.server.request("POST", "/get-online-features", {
            "features": list(features), "entities": {"user_id": users}})
        self.assertEqual(status, 200, resp)
        return resp

    def push(self, rows):
        status, resp, _ = self.server.request("POST", "/v1/features/push", push_body(rows))
        self.assertEqual(status, 200, resp)
        return resp

    def test_push_then_get_returns_present_values(self):
        r = self.push([profile(9001, iso(60), avg=77.5, home_country="DE")])
        self.assertEqual((r["written"], r["rejected"]), (1, 0))
        resp = self.get([9001])
        self.assertEqual(resp["metadata"]["feature_names"],
                         ["user_id", "avg_amount_30d", "home_country"])
        self.assertEqual(resp["results"][0]["values"], [9001])
        self.assertEqual(resp["results"][1]["values"], [77.5])
        self.assertEqual(resp["results"][1]["statuses"], ["PRESENT"])
        self.assertEqual(resp["results"][2]["values"], ["DE"])

    def test_older_push_does_not_overwrite(self):
        self.push([profile(9002, iso(60), avg=10.0)])
        r = self.push([profile(9002, iso(3600), avg=99.0)])
        self.assertEqual((r["written"], r["skipped_stale"]), (0, 1))
        self.assertEqual(self.get([9002])["results"][1]["values"], [10.0])
        self.push([profile(9002, iso(1), avg=20.0)])
        self.assertEqual(self.get([9002])["results"][1]["values"], [20.0])

    def test_statuses_for_unknown_stale_and_null(self):
        self.push([profile(9003, iso(8 * 86400)),                 # older than the week's TTL
                   profile(9004, iso(60), avg=None)])             # null value
        resp = self.get([9003, 9004, 424242])
        self.assertEqual(resp["results"][1]["statuses"],
                         ["OUTSIDE_MAX_AGE", "NULL_VALUE", "NOT_FOUND"])
        self.assertEqual(resp["results"][1]["values"], [None, None, None])
        self.assertEqual(resp["results"][2]["statuses"][0], "OUTSIDE_MAX_AGE")

    def test_bad_rows_are_rejected_with_row_numbers_others_kept(self):
        r = self.push([profile(9005, iso(60)), profile("abc", iso(60)),
                       profile(9006, None), profile(9007, iso(60), user_age="old"),
                       profile(9008, iso(60))])
        self.assertEqual((r["rows"], r["written"], r["rejected"]), (5, 2, 3))
        self.assertEqual([(x["row"], x["column"]) for x in r["rejections"]],
                         [(1, "user_id"), (2, "event_timestamp"), (3, "user_age")])
        self.assertEqual(self.get([9008])["results"][1]["statuses"], ["PRESENT"])

    BAD_REQUESTS = [
        ("push", {"push_source_name": "nope", "df": {}}, 404, "unknown_push_source"),
        ("push", {"push_source_name": "user_profile_push", "df": {"user_id": [1]}}, 400,
         "missing_column"),
        ("push", {"push_source_name": "user_profile_push",
                  "df": {"user_id": [1, 2], "event_timestamp": [1]}}, 400, "ragged_columns"),
        ("get-online-features", {"features": ["user_profile:nope"],
                                 "entities": {"user_id": [1]}}, 400, "unknown_feature"),
        ("get-online-features", {"features": ["nope:avg_amount_30d"],
                                 "entities": {"user_id": [1]}}, 404, "unknown_feature_view"),
        ("get-online-features", {"feature_service": "nope", "entities": {"user_id": [1]}},
         404, "unknown_feature_service"),
        ("get-online-features", {"feature_service": "fraud_v1", "entities": {}}, 400,
         "missing_entity_key"),
        ("get-online-features", {"feature_service": "fraud_v1",
                                 "entities": {"user_id": ["x"]}}, 400, "bad_entity_key"),
        ("push", "{not json", 400, "malformed_json"),
    ]

    def test_bad_requests_name_the_problem(self):
        for op, body, code, reason in self.BAD_REQUESTS:
            with self.subTest(op=op, body=body):
                status, resp, _ = self.server.request("POST", "/v1/features/" + op, body)
                self.assertEqual((status, resp["error"]["reason"]), (code, reason), resp)

    def test_feast_routes_answer_errors_in_feasts_shape(self):
        # Feast's server sends a JSON string holding {module, class, message};
        # its SDK raises that class. Status codes are those of Feast's classes.
        feast_class = {"unknown_feature_view": ("FeatureViewNotFoundException", 404),
                       "unknown_feature_service": ("FeatureServiceNotFoundException", 404),
                       "unknown_push_source": ("PushSourceNotFoundException", 422)}
        for op, body, code, reason in self.BAD_REQUESTS:
            with self.subTest(op=op, body=body):
                status, resp, _ = self.server.request("POST", "/" + op, body)
                self.assertIsInstance(resp, str)
                detail = json.loads(resp)
                cls, want = feast_class.get(reason, ("FeastError", code))
                self.assertEqual((status, detail["module"], detail["class"], detail["reason"]),
                                 (want, "feast.errors", cls, reason), detail)
                self.assertTrue(detail["message"])

    def test_feast_push_is_all_or_nothing_as_feasts(self):
        rows = [profile(9020, iso(60)), profile(9021, iso(60), user_age="old")]
        status, resp, _ = self.server.request("POST", "/push", push_body(rows))
        detail = json.loads(resp)
        self.assertEqual((status, detail["class"], detail["reason"]), (400, "FeastError",
                                                                       "rejected_rows"))
        self.assertIn("row 1, column user_age", detail["message"])
        self.assertEqual(self.get([9020])["results"][1]["statuses"], ["NOT_FOUND"])
        status, resp, _ = self.server.request("POST", "/push", push_body(rows[:1]))
        self.assertEqual((status, resp["written"]), (200, 1))

    def oversized(self, path):
        """Announces a body over http.max_body_bytes (1 MiB) and waits for the
        answer before sending it, as clients that send Expect: 100-continue do."""
        conn = self.server.connection()
        try:
            conn.putrequest("POST", path)
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(2 << 20))
            conn.putheader("Expect", "100-continue")
            conn.endheaders()
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def test_feast_routes_refuse_oversized_bodies_in_feasts_shape(self):
        status, body = self.oversized("/write-to-online-store")
        detail = json.loads(body)
        self.assertEqual((status, detail["class"], detail["reason"]), (413, "FeastError",
                                                                       "body_too_large"))
        status, body = self.oversized("/v1/features/push")
        self.assertEqual((status, body["error"]["reason"]), (413, "body_too_large"))

    def test_feast_vector_search_routes_say_there_is_none(self):
        for path in ("/retrieve-online-documents", "/search"):
            status, resp, _ = self.server.request("POST", path, {"features": [], "top_k": 1})
            detail = json.loads(resp)
            self.assertEqual((status, detail["class"]), (404, "FeastError"))
            self.assertIn("no vector search", detail["message"])

    def test_key_only_predict_equals_explicit_features(self):
        self.push([profile(9010, iso(60), avg=12.0, account_age_days=3, user_age=19,
                           chargebacks_365d=2)])
        txn = {"amount": 90.5, "hour_of_day": 2, "is_online": True, "ip_risk": 0.6}
        status, by_key, _ = self.server.request("POST", "/predict", dict(txn, user_id=9010))
        self.assertEqual(status, 200, by_key)
        resp = self.get([9010], ["user_profile:" + f for f in FRAUD_STORED] +
                        ["user_txn:" + f for f in FRAUD_WINDOWS])
        explicit = dict(txn)
        for name, result in zip(resp["metadata"]["feature_names"][1:], resp["results"][1:]):
            explicit[name] = result["values"][0]
        explicit["seconds_since_last_txn"] = 2592000  # NOT_FOUND: serving used the default
        status, by_value, _ = self.server.request("POST", "/predict", {"features": explicit})
        self.assertEqual(status, 200, by_value)
        self.assertEqual(by_key["prediction"], by_value["prediction"])
        self.assertEqual(by_key["feature_store"], "ok")

    def test_registry_listing(self):
        status, resp, _ = self.server.request("GET", "/v1/features")
        self.assertEqual(status, 200)
        self.assertEqual(resp["entities"], [{"name": "user", "join_key": "user_id",
                                             "dtype": "int64"}])
        view = resp["feature_views"][0]
        self.assertEqual((view["name"], view["ttl_seconds"]), ("user_profile", 604800))
        self.assertIn({"name": "avg_amount_30d", "dtype": "float"}, view["features"])
        self.assertEqual(resp["feature_services"][0]["name"], "fraud_v1")


FRAUD_WINDOWS = ["txn_count_1h", "txn_count_24h", "amount_sum_24h", "seconds_since_last_txn"]
FRAUD_STORED = ["avg_amount_30d", "account_age_days", "card_age_days", "user_age",
                "credit_limit", "utilization", "email_age_days", "chargebacks_365d"]


class RocksDbHttpTest(FeatureStoreHttpTest, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.server = Server(config=fraud_demo_config(cls.dir.name))

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.dir.cleanup()

    def test_values_persist_across_a_restart(self):
        self.push([profile(9100, iso(60), avg=31.25)])
        self.server.stop()
        type(self).server = Server(config=os.path.join(self.dir.name, "rtml.yaml"))
        self.assertEqual(self.get([9100])["results"][1]["values"], [31.25])


class RedisHttpTest(FeatureStoreHttpTest, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.redis = RedisServer()
        cls.config = fraud_demo_config(cls.dir.name, store="redis", redis_port=cls.redis.port)
        cls.server = Server(config=cls.config)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.redis.stop()
        cls.dir.cleanup()

    def test_key_layout_is_one_hash_per_entity(self):
        self.push([profile(9200, iso(60), avg=5.5)])
        fields = self.redis.cli("HGETALL", "fraud:fv:user_profile:9200").split()
        as_map = dict(zip(fields[::2], fields[1::2]))
        self.assertEqual(as_map["avg_amount_30d"], "5.5")
        self.assertIn("_ts", as_map)

    def test_redis_stopped_mid_run_degrades_then_recovers(self):
        self.push([profile(9300, iso(60))])
        txn = {"user_id": 9300, "amount": 42.0}
        status, ok, _ = self.server.request("POST", "/predict", txn)
        self.assertEqual((status, ok["feature_store"]), (200, "ok"))
        self.redis.stop()
        try:
            for _ in range(20):  # every request still answers, on defaults
                status, resp, _ = self.server.request("POST", "/predict", txn)
                self.assertEqual(status, 200, resp)
                self.assertEqual(resp["feature_store"], "degraded")
            body = {"feature_service": "fraud_v1", "entities": {"user_id": [1]}}
            status, resp, _ = self.server.request("POST", "/v1/features/get-online-features", body)
            self.assertEqual((status, resp["error"]["reason"]), (503, "feature_store_unavailable"))
            status, resp, _ = self.server.request("POST", "/get-online-features", body)
            self.assertEqual((status, json.loads(resp)["reason"]),
                             (503, "feature_store_unavailable"))
            metrics = self.server.request("GET", "/metrics")[1]
            self.assertRegex(metrics, r'rtml_requests_total\{model="fraud",version="1",path="http",'
                                      r'outcome="degraded"\} [1-9]')
            self.assertRegex(metrics, r'rtml_feature_store_reads_total\{backend="redis",'
                                      r'outcome="error"\} [1-9]')
        finally:
            self.redis.start()
        # Each loop's breakers probe again after 300 ms: predicts (the loop's
        # own Redis connection) and feature reads (its session) recover apart,
        # on whichever loop a connection lands.
        body = {"feature_service": "fraud_v1", "entities": {"user_id": [9300]}}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            resp = self.server.request("POST", "/predict", txn)[1]
            reads = [self.server.request("POST", "/v1/features/get-online-features", body)[0]
                     for _ in range(4)]
            if resp.get("feature_store") == "ok" and reads == [200] * 4:
                break
            time.sleep(0.05)
        self.assertEqual(resp["feature_store"], "ok", resp)
        self.assertEqual(reads, [200] * 4)
        self.push([profile(9300, iso(1), avg=64.0)])
        self.assertEqual(self.get([9300])["results"][1]["values"], [64.0])


class FeaturesCliTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.config = fraud_demo_config(self.dir.name)

    def tearDown(self):
        self.dir.cleanup()

    def test_apply_list_get(self):
        out = run_rtml("features", "list", "--config", self.config).stdout
        self.assertIn("registry: applied, up to date", out)
        self.assertIn("user_profile", out)
        got = json.loads(run_rtml("features", "get", "--config", self.config, "--service",
                                  "fraud_v1", "-e", "user_id=1,999999").stdout)
        names = got["metadata"]["feature_names"]
        profile = names.index("avg_amount_30d")
        self.assertEqual(got["results"][profile]["statuses"], ["PRESENT", "NOT_FOUND"])
        count = names.index("txn_count_1h")  # a stream window: 0 for users without events
        self.assertEqual(got["results"][count]["values"], [0, 0])
        listed = json.loads(run_rtml("features", "list", "--config", self.config,
                                     "--json").stdout)
        self.assertEqual(listed["project"], "fraud")

    def test_materialize_reports_rows_stale_and_rejections(self):
        csv = os.path.join(self.dir.name, "data", "user_profile.csv")
        with open(csv, "a") as f:
            f.write("abc,2026-11-26T00:00:00Z,1,1,1,1,1,1,1,1,FR\n")
            f.write("5,not-a-time,1,1,1,1,1,1,1,1,FR\n")
            f.write("6,2026-11-26T00:00:00Z,lots,1,1,1,1,1,1,1,FR\n")
        r = run_rtml("features", "materialize", "--config", self.config)
        self.assertIn("3 rejected", r.stdout)
        self.assertRegex(r.stdout, r"rejected row \d+, column user_id: entity key must be int64")
        self.assertRegex(r.stdout, r"column event_timestamp: 'not-a-time' is not a timestamp")
        self.assertIn("skipped as stale", r.stdout)
        self.assertIn("100%", r.stderr)  # the progress bar
        # Incremental: nothing new since the last watermark.
        inc = run_rtml("features", "materialize-incremental", "--config", self.config)
        self.assertIn("0 written", inc.stdout)

    def test_push_from_a_file_and_historical_join(self):
        body = os.path.join(self.dir.name, "push.json")
        with open(body, "w") as f:
            json.dump(push_body([profile(7, "2026-11-20T00:00:00Z", avg=1.5)]), f)
        out = json.loads(run_rtml("features", "push", "--config", self.config, "--file",
                                  body).stdout)
        self.assertEqual(out["rows"], 1)
        entities = os.path.join(self.dir.name, "entities.csv")
        with open(entities, "w") as f:
            f.write("user_id,event_timestamp,label\n1,2099-01-01T00:00:00Z,1\n"
                    "1,2000-01-01T00:00:00Z,0\n")
        dest = os.path.join(self.dir.name, "train.csv")
        r = run_rtml("features", "historical", "--config", self.config, "--entities", entities,
                     "--service", "fraud_v1", "--out", dest)
        self.assertIn("2 entity rows", r.stdout)
        with open(dest) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0].split(",")[:4], ["user_id", "event_timestamp", "label",
                                                  "avg_amount_30d"])
        self.assertEqual(lines[2].split(",")[3], "")  # before any profile existed

    def test_errors_say_what_to_do(self):
        r = run_rtml("features", "historical", "--config", self.config, "--entities",
                     self.config, "--out", "/nonexistent/x.csv", "--service", "fraud_v1",
                     check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("cannot write", r.stderr)
        # RocksDB is single-writer: a running server holds it.
        server = Server(config=self.config)
        try:
            r = run_rtml("features", "apply", "--config", self.config, check=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("POST /push", r.stderr)
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
