"""Live models over HTTP: a real `rtml serve` on a model repository in a
temporary folder, changed while it serves. New versions appear through the
repository API and through polling; broken ones are refused with their reason
while the old version keeps answering; unload; the admin token guards the
repository API and feature writes; loads under traffic fail no request."""
import json
import os
import shutil
import tempfile
import threading
import unittest

from harness import REPO, Server, fraud_demo_config, run_rtml, wait_for

PARITY = os.path.join(REPO, "tests", "testdata", "parity", "xgb-debian")
INPUTS = """inputs:
  - {name: f0, default: 0.25}
  - {name: f1, required: true}
  - {name: f2, min: -100, max: 100}
  - {name: f3}
  - {name: f4}
  - {name: f5, dtype: int, default: 1}
"""
TOKEN = "s3cret-admin"
AUTH = {"Authorization": "Bearer " + TOKEN}
ROW = {"features": {"f0": 0.5, "f1": 1.5, "f2": 3, "f3": -1, "f4": 2, "f5": 1}}


def add_version(root, version, yaml=INPUTS, model_file="binary_logistic.json"):
    d = os.path.join(root, "binary", str(version))
    os.makedirs(d, exist_ok=True)
    shutil.copy(os.path.join(PARITY, model_file), os.path.join(d, "model.json"))
    with open(os.path.join(d, "model.yaml"), "w") as f:  # written last: the version is complete
        f.write(yaml)
    return d


def index_of(server, model="binary"):
    status, body, _ = server.request("GET", "/v1/repository/index", headers=AUTH)
    assert status == 200, body
    return {v["version"]: v for v in body["models"] if v["name"] == model}


class RepositoryApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.root = os.path.join(cls.dir.name, "models")
        add_version(cls.root, 1)
        config = os.path.join(cls.dir.name, "rtml.yaml")
        with open(config, "w") as f:
            f.write(f"models: {{repository: {cls.root}}}\nhttp: {{admin_token: {TOKEN}}}\n")
        cls.server = Server(config=config)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.dir.cleanup()

    def predict(self, path="/v1/models/binary/predict"):
        return self.server.request("POST", path, ROW)

    def load(self, model="binary"):
        return self.server.request("POST", f"/v1/repository/models/{model}/load", headers=AUTH)

    def test_1_a_new_version_serves_after_load_without_a_restart(self):
        add_version(self.root, 2)
        status, body, _ = self.load()
        self.assertEqual(status, 200, body)
        self.assertEqual([(v["version"], v["state"], v["serving"]) for v in body["versions"]],
                         [(1, "READY", True), (2, "READY", True)])
        self.assertTrue(all(v["size_bytes"] > 1000 for v in body["versions"]))
        r = run_rtml("models", "inspect", "--url", f"http://127.0.0.1:{self.server.port}",
                     check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("needs the admin token: set RTML_ADMIN_TOKEN", r.stderr)
        metrics = self.server.request("GET", "/metrics")[1]
        self.assertRegex(metrics, r'rtml_model_memory_bytes\{model="binary",version="2"\} [1-9]')
        status, body, _ = self.predict("/v1/models/binary/versions/2/predict")
        self.assertEqual((status, body["version"]), (200, 2))
        status, body, _ = self.predict()
        self.assertEqual((status, body["version"]), (200, 2))  # the highest serves by default
        self.assertEqual(self.server.request("GET", "/v1/models/binary")[1]["default_version"], 2)

    def test_2_broken_versions_are_refused_and_the_old_one_keeps_answering(self):
        d = add_version(self.root, 3)
        with open(os.path.join(d, "model.json"), "w") as f:
            f.write('{"learner": ')  # bad JSON
        add_version(self.root, 4, yaml="inputs: [{name: a}, {name: b}]\n")  # wrong feature count
        status, body, _ = self.load()
        self.assertEqual((status, body["error"]["reason"]), (400, "model_load_failed"), body)
        self.assertIn("6 features but model.yaml lists 2", body["error"]["message"])
        idx = index_of(self.server)
        self.assertEqual((idx[3]["state"], idx[3]["serving"]), ("FAILED", False))
        self.assertIn("model.json", idx[3]["reason"])
        self.assertEqual(idx[4]["state"], "FAILED")
        self.assertIn("6 features", idx[4]["reason"])
        status, body, _ = self.predict()
        self.assertEqual((status, body["version"]), (200, 2))
        status, body, _ = self.predict("/v1/models/binary/versions/3/predict")
        self.assertEqual((status, body["error"]["reason"]), (404, "unknown_version"))
        metrics = self.server.request("GET", "/metrics")[1]
        self.assertRegex(metrics, r'rtml_model_loads_total\{model="binary",outcome="failed"\} [1-9]')
        r = run_rtml("models", "inspect", self.root, check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("version 4: FAILED: ", r.stdout)
        self.assertIn("6 features but model.yaml lists 2", r.stdout)
        shutil.rmtree(os.path.join(self.root, "binary", "3"))
        shutil.rmtree(os.path.join(self.root, "binary", "4"))
        self.assertEqual(self.load()[0], 200)

    def test_3_unload_then_load_again(self):
        status, body, _ = self.server.request("POST", "/v1/repository/models/binary/unload",
                                              headers=AUTH)
        self.assertEqual(status, 200, body)
        status, body, _ = self.predict()
        self.assertEqual((status, body["error"]["reason"]), (404, "unknown_model"))
        self.assertEqual({v["state"] for v in index_of(self.server).values()}, {"UNLOADED"})
        self.assertEqual(self.load()[0], 200)
        self.assertEqual(self.predict()[0], 200)

    def test_4_unknown_models_and_methods(self):
        status, body, _ = self.load("nope")
        self.assertEqual((status, body["error"]["reason"]), (404, "unknown_model"))
        status, body, _ = self.server.request("GET", "/v1/repository/models/binary/load",
                                              headers=AUTH)
        self.assertEqual((status, body["error"]["reason"]), (405, "method_not_allowed"))

    def test_5_the_admin_token_is_enforced_and_never_logged(self):
        for headers, code, reason in (({}, 401, "unauthorized"),
                                      ({"Authorization": "Bearer wrong"}, 403, "forbidden"),
                                      ({"Authorization": "Basic " + TOKEN}, 401, "unauthorized")):
            for method, path in (("GET", "/v1/repository/index"),
                                 ("POST", "/v1/repository/models/binary/load")):
                status, body, hdrs = self.server.request(method, path, headers=headers)
                self.assertEqual((status, body["error"]["reason"]), (code, reason), path)
        self.assertEqual(self.predict()[0], 200)  # predict stays open
        self.assertEqual(self.server.request("GET", "/v1/models")[0], 200)
        self.assertFalse(any(TOKEN in line for line in self.server.log))

    def test_6_loads_under_traffic_fail_no_request(self):
        statuses, stop = [], threading.Event()

        def client():
            conn = self.server.connection()
            try:
                while not stop.is_set():
                    statuses.append(self.server.request("POST", "/predict", ROW, conn=conn)[0])
            finally:
                conn.close()

        t = threading.Thread(target=client)
        t.start()
        try:
            for i in range(10):  # a new version each time, then the load that serves it
                add_version(self.root, 10 + i)
                self.assertEqual(self.load()[0], 200)
        finally:
            stop.set()
            t.join()
        self.assertGreater(len(statuses), 50)
        self.assertEqual(set(statuses), {200})
        self.assertEqual(self.predict()[1]["version"], 19)


def write_policy(root, text):
    with open(os.path.join(root, "binary", "serving.yaml"), "w") as f:
        f.write(text)


class ServingPolicyTest(unittest.TestCase):
    """serving.yaml: default, labels, traffic, sticky keys, rollback."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.root = os.path.join(cls.dir.name, "models")
        add_version(cls.root, 1)
        add_version(cls.root, 2, model_file="reg_logistic.json")  # other predictions
        write_policy(cls.root, "default: 1\nlabels: {stable: 1, canary: 2}\n"
                               "traffic: {1: 90, 2: 10}\n")
        config = os.path.join(cls.dir.name, "rtml.yaml")
        with open(config, "w") as f:
            f.write(f"models: {{repository: {cls.root}}}\n")
        cls.server = Server(config=config)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.dir.cleanup()

    def load(self):
        return self.server.request("POST", "/v1/repository/models/binary/load")

    def versions_of(self, n, body=lambda i: ROW):
        conn = self.server.connection()
        try:
            out = []
            for i in range(n):
                status, resp, _ = self.server.request("POST", "/predict", body(i), conn=conn)
                self.assertEqual(status, 200, resp)
                out.append((resp["version"], resp["route"]))
            return out
        finally:
            conn.close()

    def test_1_traffic_weights_hold_over_10000_requests(self):
        got = self.versions_of(10000)
        canary = sum(1 for v, r in got if v == 2)
        self.assertTrue(all(r == "traffic" for _, r in got))
        self.assertTrue(800 <= canary <= 1200, canary)  # 10% within a few percent

    def test_2_labels_and_versions_by_url(self):
        status, body, _ = self.server.request("POST", "/v1/models/binary/labels/canary/predict", ROW)
        self.assertEqual((status, body["version"], body["route"]), (200, 2, "canary"))
        status, body, _ = self.server.request("POST", "/v1/models/binary/labels/stable/predict", ROW)
        self.assertEqual((body["version"], body["route"]), (1, "stable"))
        status, body, _ = self.server.request("POST", "/v1/models/binary/versions/2/predict", ROW)
        self.assertEqual((body["version"], body["route"]), (2, "version"))
        status, body, _ = self.server.request("POST", "/v1/models/binary/labels/nope/predict", ROW)
        self.assertEqual((status, body["error"]["reason"]), (404, "unknown_label"))
        self.assertEqual(self.server.request("GET", "/v1/models/binary")[1]["default_version"], 1)

    def test_3_sticky_keys_always_land_on_one_version(self):
        write_policy(self.root, "default: 1\nlabels: {stable: 1, canary: 2}\n"
                                "traffic: {1: 50, 2: 50}\nsticky_key: f3\n")
        self.assertEqual(self.load()[0], 200)

        def row(i):
            return {"features": {**ROW["features"], "f3": i % 200}}  # 200 users, 10 requests each

        got = self.versions_of(2000, row)
        by_user = {}
        for i, (v, _) in enumerate(got):
            by_user.setdefault(i % 200, set()).add(v)
        self.assertTrue(all(len(vs) == 1 for vs in by_user.values()), by_user)
        on_two = sum(1 for vs in by_user.values() if 2 in vs)
        self.assertTrue(60 <= on_two <= 140, on_two)  # about half the users

    def test_4_a_policy_naming_a_missing_version_is_refused_and_rollback_is_an_edit(self):
        write_policy(self.root, "traffic: {1: 50, 7: 50}\n")
        status, body, _ = self.load()
        self.assertEqual((status, body["error"]["reason"]), (400, "model_load_failed"), body)
        self.assertIn("names version 7, which is not loaded", body["error"]["message"])
        status, idx, _ = self.server.request("GET", "/v1/repository/index")
        policy = idx["serving_policies"][0]
        self.assertEqual((policy["name"], policy["state"]), ("binary", "FAILED"))
        self.assertIn("stays in force", policy["reason"])
        self.assertEqual(policy["in_force"]["traffic"], {"1": 50, "2": 50})
        write_policy(self.root, "default: 1\n")  # roll back: everything to version 1
        self.assertEqual(self.load()[0], 200)
        self.assertEqual({v for v, _ in self.versions_of(200)}, {1})
        os.remove(os.path.join(self.root, "binary", "serving.yaml"))
        self.assertEqual(self.load()[0], 200)
        self.assertEqual(self.versions_of(1), [(2, "default")])  # the highest again


class ShadowTest(unittest.TestCase):
    def test_shadow_is_scored_and_compared_but_never_answers(self):
        import random
        rng = random.Random(7)
        rows = [{"features": {"f0": rng.uniform(-2, 2), "f1": rng.uniform(-2, 2),
                              "f2": rng.uniform(-100, 100), "f3": rng.uniform(-3, 3),
                              "f4": rng.uniform(-3, 3), "f5": rng.randint(0, 3)}}
                for _ in range(300)]
        with tempfile.TemporaryDirectory() as tmp:
            root = os.path.join(tmp, "models")
            add_version(root, 1)
            add_version(root, 2, model_file="reg_logistic.json")
            write_policy(root, "default: 1\nshadow: [2]\n")
            config = os.path.join(tmp, "rtml.yaml")
            with open(config, "w") as f:
                f.write(f"models: {{repository: {root}}}\n")
            server = Server(config=config)
            try:
                answers = []
                for row in rows:
                    status, body, _ = server.request("POST", "/predict", row)
                    self.assertEqual((status, body["version"], body["route"]), (200, 1, "default"))
                    answers.append(body["prediction"])
                wait_for(lambda: self.shadow_rows(server) >= len(rows), 30, "the shadow to catch up")
                stats = server.request("GET", "/v1/stats")[1]["shadow"]
                metrics = server.request("GET", "/metrics")[1]
                live = run_rtml("models", "inspect", "--url", f"http://127.0.0.1:{server.port}")
                offline = run_rtml("models", "inspect", root)
                # The truth: version 2's own answers to the same rows, asked directly.
                status, body, _ = server.request("POST", "/v1/models/binary/versions/2/predict",
                                                 {"instances": [r["features"] for r in rows]})
                shadow = body["predictions"]
                status, body, _ = server.request("POST", "/v1/models/binary/versions/1/predict",
                                                 {"instances": [r["features"] for r in rows]})
                self.assertEqual(body["predictions"], answers)  # what answered was version 1's
                self.assertNotEqual(answers, shadow)
            finally:
                server.stop()
        (s,) = [x for x in stats if x["against"] == 1]
        self.assertEqual((s["model"], s["version"], s["rows"]), ("binary", 2, len(rows)))
        mean = sum(abs(a - b) for a, b in zip(answers, shadow)) / len(rows)
        differ = sum((a >= 0.5) != (b >= 0.5) for a, b in zip(answers, shadow)) / len(rows)
        self.assertAlmostEqual(s["mean_abs_diff"], mean, delta=1e-6)
        self.assertAlmostEqual(s["decision_disagreement"], differ, delta=1e-9)
        self.assertGreater(differ, 0)  # the pair disagrees somewhere: the figure means something
        self.assertTrue('rtml_shadow_rows_total{model="binary",version="2",against="1"} 300\n'
                        in metrics)
        self.assertRegex(metrics, r'rtml_requests_total\{model="binary",version="2",'
                                  r'path="shadow",outcome="ok"\} 30[0-9]')
        self.assertIn("version 1: READY, serving", live.stdout)
        self.assertIn('"shadow":[2]', live.stdout)
        self.assertRegex(live.stdout, r"shadow version 2 against 1: 300 rows, mean \|diff\| "
                                      r"[\d.]+, decisions differ [\d.]+%")
        self.assertIn("serving.yaml:\n    default: 1\n    shadow: 2", offline.stdout)

    @staticmethod
    def shadow_rows(server):
        stats = server.request("GET", "/v1/stats")[1].get("shadow", [])
        return sum(x["rows"] for x in stats)


class PollingTest(unittest.TestCase):
    def test_models_poll_s_picks_up_a_new_version(self):
        with tempfile.TemporaryDirectory() as tmp:
            root = os.path.join(tmp, "models")
            add_version(root, 1)
            config = os.path.join(tmp, "rtml.yaml")
            with open(config, "w") as f:
                f.write(f"models: {{repository: {root}, poll_s: 1}}\n")
            server = Server(config=config)
            try:
                add_version(root, 2)
                wait_for(lambda: server.request("POST", "/predict", ROW)[1].get("version") == 2,
                         20, "version 2 to serve")
                self.assertEqual(index_of(server)[2]["state"], "READY")  # no token set: open
            finally:
                server.stop()


class FeatureWritesTokenTest(unittest.TestCase):
    def test_feature_writes_need_the_token_reads_do_not(self):
        with tempfile.TemporaryDirectory() as tmp:
            config = fraud_demo_config(tmp, store="memory", users=10)
            server = Server(config=config, env={"RTML_ADMIN_TOKEN": TOKEN})
            try:
                push = {"push_source_name": "user_profile_push", "df": {}}
                for path in ("/v1/features/push", "/push", "/write-to-online-store",
                             "/materialize-incremental"):
                    status, body, _ = server.request("POST", path, push)
                    reason = (body["error"]["reason"] if isinstance(body, dict)
                              else json.loads(body)["reason"])
                    self.assertEqual((status, reason), (401, "unauthorized"), path)
                status, body, _ = server.request("POST", "/v1/features/push", push, headers=AUTH)
                self.assertEqual(status, 400, body)  # past the token: the body's own error
                read = {"features": ["user_profile:avg_amount_30d"], "entities": {"user_id": [1]}}
                self.assertEqual(server.request("POST", "/get-online-features", read)[0], 200)
                self.assertEqual(server.request("POST", "/predict", {"user_id": 1, "amount": 5})[0],
                                 200)
            finally:
                server.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
