"""The Open Inference Protocol (KServe V2) over REST, driven by Triton's own
client (tritonclient.http from PyPI, in the project's test virtualenv) as a
Triton or KServe user would: health, metadata, and inference of one row and
of batches, with JSON and binary tensors, per-feature tensors and one matrix
tensor, equal to XGBoost's predictions (Debian's XGBoost for the fraud
model; the stored predictions of PyPI's XGBoost 3.2 for the multi-class
test model). A model with a feature service reads its stored inputs by an
entity-key tensor, as rtml's own JSON does. Bad requests (wrong datatype,
wrong shape, unknown input, truncated binary data, ...) get 4xx answers in
V2's {"error": ...} shape that tritonclient raises, and no crash.
"""
import json
import os
import struct
import subprocess
import tempfile
import time
import unittest

import numpy as np
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from harness import FRAUD, REPO, Server, fraud_demo_config

FRAUD_MODEL = os.path.join(FRAUD, "models", "fraud", "1", "model.json")
TESTDATA_MODELS = os.path.join(REPO, "tests", "testdata", "models")
PARITY = os.path.join(REPO, "tests", "testdata", "parity")
DTYPES = {"float": "FP32", "int": "INT64", "bool": "BOOL"}
NUMPY = {"FP32": np.float32, "INT64": np.int64, "BOOL": np.bool_}

ORACLE = """
import json, sys
import numpy as np, xgboost as xgb
b = xgb.Booster(model_file=sys.argv[1]); b.set_param({"nthread": 1})
rows = np.asarray(json.load(sys.stdin), dtype=np.float32)
print(json.dumps([float(p) for p in b.inplace_predict(rows)]))
"""


def xgboost_predict(model_file, rows):
    """Debian's XGBoost (python3-xgboost) on rows in model order."""
    out = subprocess.run(["/usr/bin/python3", "-c", ORACLE, model_file],
                         input=json.dumps(rows), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def fraud_rows(inputs, n, seed):
    """n rows giving every input, within its bounds and of its type."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        row = []
        for spec in inputs:
            lo = spec.get("min", 0.0)
            hi = min(spec.get("max", 1000.0), lo + 1000.0)
            if spec["dtype"] == "bool":
                row.append(float(rng.integers(0, 2)))
            elif spec["dtype"] == "int":
                row.append(float(rng.integers(int(lo), int(hi) + 1)))
            else:
                row.append(float(np.float32(rng.uniform(lo, hi))))
        rows.append(row)
    return rows


def feature_tensors(inputs, rows, binary):
    """One tritonclient InferInput per feature, typed as the metadata says."""
    tensors = []
    for j, spec in enumerate(inputs):
        datatype = DTYPES[spec["dtype"]]
        column = np.asarray([r[j] for r in rows]).astype(NUMPY[datatype])
        t = httpclient.InferInput(spec["name"], [len(rows)], datatype)
        t.set_data_from_numpy(column, binary_data=binary)
        tensors.append(t)
    return tensors


class FraudV2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.server = Server(config=fraud_demo_config(cls.dir.name))
        cls.url = f"127.0.0.1:{cls.server.port}"
        cls.client = httpclient.InferenceServerClient(url=cls.url)
        cls.inputs = cls.server.request("GET", "/v1/models/fraud")[1]["inputs"]

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()
        cls.dir.cleanup()

    def post(self, path, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body)
        return requests.post(f"http://{self.url}{path}", data=data, headers=headers or {},
                             timeout=10)

    def test_health_and_metadata(self):
        self.assertTrue(self.client.is_server_live())
        self.assertTrue(self.client.is_server_ready())
        self.assertTrue(self.client.is_model_ready("fraud"))
        self.assertTrue(self.client.is_model_ready("fraud", "1"))
        self.assertFalse(self.client.is_model_ready("nope"))
        server = self.client.get_server_metadata()
        self.assertEqual(server["name"], "rtml")
        self.assertIn("binary_tensor_data", server["extensions"])
        meta = self.client.get_model_metadata("fraud")
        self.assertEqual(meta["name"], "fraud")
        self.assertEqual(meta["versions"], ["1"])
        by_name = {t["name"]: t for t in meta["inputs"]}
        for spec in self.inputs:
            self.assertEqual(by_name[spec["name"]]["datatype"], DTYPES[spec["dtype"]])
            self.assertEqual(by_name[spec["name"]]["shape"], [-1])
        self.assertEqual(by_name["user_id"]["datatype"], "INT64")  # the feature service's key
        self.assertEqual(meta["parameters"]["entity_keys"], "user_id")
        self.assertEqual(meta["outputs"], [{"name": "probability", "datatype": "FP32",
                                            "shape": [-1]}])
        self.assertEqual(self.client.get_model_metadata("fraud", "1")["name"], "fraud")
        with self.assertRaises(InferenceServerException) as e:
            self.client.get_model_metadata("nope")
        self.assertIn("unknown model 'nope'", e.exception.message())
        status = requests.get(f"http://{self.url}/v2/models/fraud/versions/7").status_code
        self.assertEqual(status, 404)

    def test_statistics_count_what_was_scored(self):
        self.assertIn("statistics", self.client.get_server_metadata()["extensions"])

        def fraud_stats():
            (stats,) = self.client.get_inference_statistics("fraud", "1")["model_stats"]
            return stats

        before = fraud_stats()
        self.client.infer("fraud", feature_tensors(self.inputs, fraud_rows(self.inputs, 5, seed=21),
                                                   binary=True))
        after = fraud_stats()
        self.assertEqual((after["name"], after["version"]), ("fraud", "1"))
        self.assertEqual(after["inference_count"] - before["inference_count"], 5)  # rows
        self.assertEqual(after["execution_count"] - before["execution_count"], 1)
        for stat in ("success", "queue", "compute_input", "compute_infer", "compute_output"):
            self.assertEqual(after["inference_stats"][stat]["count"]
                             - before["inference_stats"][stat]["count"], 1, stat)
            self.assertGreater(after["inference_stats"][stat]["ns"],
                               before["inference_stats"][stat]["ns"], stat)
        self.assertLessEqual(abs(after["last_inference"] - time.time() * 1000), 5000)
        everything = self.client.get_inference_statistics()["model_stats"]
        self.assertIn(("fraud", "1"), {(s["name"], s["version"]) for s in everything})
        with self.assertRaises(InferenceServerException) as e:
            self.client.get_inference_statistics("nope")
        self.assertEqual(e.exception.status(), "404")
        self.assertIn("unknown model 'nope'", e.exception.message())

    def test_one_row_json_equals_xgboost(self):
        rows = fraud_rows(self.inputs, 1, seed=1)
        result = self.client.infer(
            "fraud", feature_tensors(self.inputs, rows, binary=False), request_id="one-row",
            outputs=[httpclient.InferRequestedOutput("probability", binary_data=False)])
        got = result.as_numpy("probability")
        self.assertEqual(got.shape, (1,))
        self.assertAlmostEqual(float(got[0]), xgboost_predict(FRAUD_MODEL, rows)[0], delta=1e-6)
        response = result.get_response()
        self.assertEqual(response["id"], "one-row")
        self.assertEqual((response["model_name"], response["model_version"]), ("fraud", "1"))
        self.assertEqual(response["parameters"]["feature_store"], "ok")

    def test_batch_binary_tensors_equal_xgboost(self):
        rows = fraud_rows(self.inputs, 64, seed=2)
        # tritonclient's defaults: binary input tensors, binary outputs asked for.
        result = self.client.infer("fraud", feature_tensors(self.inputs, rows, binary=True))
        np.testing.assert_allclose(result.as_numpy("probability"),
                                   xgboost_predict(FRAUD_MODEL, rows), atol=1e-6)
        # What it got was binary: a JSON header, then 64 raw FP32s.
        users = {"name": "user_id", "datatype": "INT64", "shape": [2], "data": [101, 102]}
        amounts = {"name": "amount", "datatype": "FP32", "shape": [2], "data": [10, 20]}
        raw = self.post("/v2/models/fraud/infer", {"inputs": [users, amounts],
                                                   "parameters": {"binary_data_output": True}})
        self.assertEqual(raw.status_code, 200, raw.text)
        header = int(raw.headers["Inference-Header-Content-Length"])
        self.assertEqual(len(raw.content), header + 2 * 4)
        out = json.loads(raw.content[:header])["outputs"][0]
        self.assertEqual(out["parameters"]["binary_data_size"], 8)
        self.assertEqual(raw.headers["Content-Type"], "application/octet-stream")

    def test_one_matrix_tensor_in_model_order(self):
        rows = fraud_rows(self.inputs, 16, seed=3)
        expected = xgboost_predict(FRAUD_MODEL, rows)
        for binary in (False, True):
            t = httpclient.InferInput("input", [16, len(self.inputs)], "FP32")
            t.set_data_from_numpy(np.asarray(rows, dtype=np.float32), binary_data=binary)
            result = self.client.infer("fraud", [t], model_version="1")
            np.testing.assert_allclose(result.as_numpy("probability"), expected, atol=1e-6)

    def test_entity_key_tensor_reads_the_feature_store(self):
        users = [101, 102, 103]
        key = httpclient.InferInput("user_id", [3], "INT64")
        key.set_data_from_numpy(np.asarray(users, dtype=np.int64))
        amount = httpclient.InferInput("amount", [3, 1], "FP64")
        amount.set_data_from_numpy(np.asarray([[12.5], [900.0], [40.0]]))
        result = self.client.infer("fraud", [key, amount])
        native = []
        for user, a in zip(users, (12.5, 900.0, 40.0)):
            status, resp, _ = self.server.request("POST", "/predict",
                                                  {"user_id": user, "amount": a})
            self.assertEqual(status, 200, resp)
            self.assertNotIn("user_age", resp["defaulted"])  # read from the store
            native.append(resp["prediction"])
        np.testing.assert_allclose(result.as_numpy("probability"), native, atol=1e-7)
        # BYTES keys are read the same way.
        text = httpclient.InferInput("user_id", [3], "BYTES")
        text.set_data_from_numpy(np.asarray([b"101", b"102", b"103"], dtype=np.object_))
        amount.set_data_from_numpy(np.asarray([[12.5], [900.0], [40.0]]))
        again = self.client.infer("fraud", [text, amount])
        np.testing.assert_allclose(again.as_numpy("probability"), native, atol=1e-7)

    def test_missing_required_input_is_a_clear_error(self):
        key = httpclient.InferInput("user_id", [1], "INT64")
        key.set_data_from_numpy(np.asarray([1001], dtype=np.int64))
        with self.assertRaises(InferenceServerException) as e:
            self.client.infer("fraud", [key])
        self.assertEqual(e.exception.status(), "400")
        self.assertIn("required feature 'amount'", e.exception.message())

    def test_a_deadline_in_the_parameters_is_honoured(self):
        tensors = feature_tensors(self.inputs, fraud_rows(self.inputs, 1, seed=5), binary=True)
        # tritonclient's timeout (microseconds) goes in the request's parameters.
        self.assertEqual(self.client.infer("fraud", tensors, timeout=10_000_000)
                         .as_numpy("probability").shape, (1,))
        # 1 µs counts from the request's arrival: decoding a JSON batch of
        # 1,024 rows (the most a request carries) alone takes longer, so the
        # model is never run.
        batch = feature_tensors(self.inputs, fraud_rows(self.inputs, 1024, seed=6), binary=False)
        with self.assertRaises(InferenceServerException) as e:
            self.client.infer("fraud", batch, timeout=1)
        self.assertEqual(e.exception.status(), "504")
        self.assertIn("deadline passed", e.exception.message())
        self.assertEqual(self.client.infer("fraud", batch, timeout=10_000_000)
                         .as_numpy("probability").shape, (1024,))

    def tensor(self, name, datatype, shape, data):
        return {"name": name, "datatype": datatype, "shape": shape, "data": data}

    def assert_error(self, response, status, reason, *words):
        self.assertEqual(response.status_code, status, response.text)
        body = response.json()
        self.assertIsInstance(body["error"], str)
        self.assertEqual(body["reason"], reason, body)
        for w in words:
            self.assertIn(w, body["error"])

    def test_bad_requests_are_4xx_in_v2_shape(self):
        infer = "/v2/models/fraud/infer"
        amount = self.tensor("amount", "FP32", [1], [10.0])
        cases = [
            ({"inputs": [self.tensor("amount", "BYTES", [1], ["x"])]}, 400, "wrong_datatype",
             "'amount'", "BYTES"),
            ({"inputs": [self.tensor("amount", "FP17", [1], [1])]}, 400, "wrong_datatype",
             "FP17"),
            ({"inputs": [self.tensor("amount", "FP32", [1, 2], [1, 2])]}, 400, "wrong_shape",
             "[N] or [N, 1]"),
            ({"inputs": [self.tensor("amount", "FP32", [2], [1.0])]}, 400, "wrong_shape",
             "1 values", "says 2"),
            ({"inputs": [amount, self.tensor("hour_of_day", "INT64", [2], [1, 2])]}, 400,
             "wrong_shape", "2 rows"),
            ({"inputs": [amount, self.tensor("colour", "FP32", [1], [1])]}, 400,
             "unknown_input", "'colour'"),
            ({"inputs": [self.tensor("amount", "FP32", [1], ["ten"])]}, 400, "wrong_type",
             "\"ten\""),
            ({"inputs": [self.tensor("amount", "FP32", [1], [-5.0])]}, 400, "out_of_range",
             "outside"),
            ({"inputs": [self.tensor("hour_of_day", "FP32", [1], [1.5]), amount]}, 400,
             "wrong_type", "integer"),
            ({"inputs": [amount], "outputs": [{"name": "logits"}]}, 400, "unknown_output",
             "'logits'", "probability"),
            ({"inputs": []}, 400, "bad_request", "no \"inputs\""),
            ({"id": 7, "inputs": [amount]}, 400, "wrong_type", "\"id\""),
            ({"inputs": [self.tensor("amount", "FP32", [2000], [1.0] * 2000)]}, 413,
             "batch_too_large", "2000 rows"),
        ]
        for body, status, reason, *words in cases:
            with self.subTest(body=json.dumps(body)[:120]):
                self.assert_error(self.post(infer, body), status, reason, *words)
        self.assert_error(self.post(infer, b'{"inputs": [{"name": '), 400, "malformed_json")
        self.assert_error(self.post("/v2/models/nope/infer", {"inputs": [amount]}), 404,
                          "unknown_model", "'nope'")
        self.assert_error(self.post("/v2/models/fraud/versions/3/infer", {"inputs": [amount]}),
                          404, "unknown_version")
        self.assert_error(requests.get(f"http://{self.url}{infer}", timeout=10), 405,
                          "method_not_allowed", "POST")
        self.assert_error(requests.get(f"http://{self.url}/v2/nothing", timeout=10), 404,
                          "not_found")
        self.assert_error(self.post(infer, {"inputs": [amount]}, {"Content-Type": "text/csv"}),
                          415, "unsupported_media_type")
        self.assertTrue(self.server.alive())

    def test_bad_binary_data_is_a_clear_error(self):
        infer = "/v2/models/fraud/infer"

        def binary(header, raw, length=None):
            head = json.dumps(header).encode()
            n = len(head) if length is None else length
            return self.post(infer, head + raw, {"Inference-Header-Content-Length": str(n),
                                                 "Content-Type": "application/octet-stream"})
        tensor = {"name": "amount", "datatype": "FP32", "shape": [2],
                  "parameters": {"binary_data_size": 8}}
        # JSON and binary tensors mixed: the keys in JSON, the amounts raw.
        users = {"name": "user_id", "datatype": "INT64", "shape": [2], "data": [101, 102]}
        ok = binary({"inputs": [users, tensor]}, struct.pack("<2f", 10.0, 20.0))
        self.assertEqual(ok.status_code, 200, ok.text)
        self.assertEqual(ok.json()["outputs"][0]["shape"], [2])
        self.assert_error(binary({"inputs": [tensor]}, struct.pack("<f", 10.0)), 400,
                          "bad_binary_data", "truncated")
        short = dict(tensor, parameters={"binary_data_size": 4})
        self.assert_error(binary({"inputs": [short]}, struct.pack("<f", 10.0)), 400,
                          "bad_binary_data", "4 bytes", "take 8")
        self.assert_error(binary({"inputs": [tensor]}, struct.pack("<3f", 1, 2, 3)), 400,
                          "bad_binary_data", "no input's binary_data_size")
        self.assert_error(binary({"inputs": [tensor]}, b"", length=10_000), 400,
                          "bad_binary_data", "Inference-Header-Content-Length")
        self.assert_error(self.post(infer, b"{}", {"Inference-Header-Content-Length": "abc"}),
                          400, "bad_binary_data")
        self.assertTrue(self.server.alive())

    def test_v2_requests_are_counted_on_their_own_path(self):
        self.client.infer("fraud", feature_tensors(self.inputs, fraud_rows(self.inputs, 2, 4),
                                                   binary=True))
        metrics = self.server.request("GET", "/metrics")[1]
        self.assertRegex(metrics, r'rtml_requests_total\{model="fraud",version="1",'
                                  r'path="v2_rest",outcome="ok"\} [1-9]')
        series = self.server.request("GET", "/v1/stats")[1]["series"]
        v2 = [s for s in series if s["path"] == "v2_rest" and s["model"] == "fraud"]
        self.assertGreater(v2[0]["5m"]["count"], 0)


class MultiClassV2Test(unittest.TestCase):
    """iris: multi:softprob over 6 inputs, PyPI XGBoost 3.2's predictions
    stored beside the rows they were made from."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server("--models", TESTDATA_MODELS, env={"RTML_ADMIN_TOKEN": "s3cret"})
        cls.client = httpclient.InferenceServerClient(url=f"127.0.0.1:{cls.server.port}")
        rows = np.fromfile(os.path.join(PARITY, "rows.f32"), dtype="<f4").reshape(-1, 6)
        probs = np.fromfile(os.path.join(PARITY, "xgb-pypi", "multi_softprob.pred.f32"),
                            dtype="<f4").reshape(-1, 3)
        # Rows without missing values: iris's model.yaml defaults some inputs.
        full = ~np.isnan(rows).any(axis=1)
        cls.rows, cls.probs = rows[full][:64], probs[full][:64]

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()

    def test_classes_as_probabilities_and_labels(self):
        meta = self.client.get_model_metadata("iris")
        self.assertEqual(meta["parameters"]["labels"], "low,mid,high")
        self.assertEqual([o["name"] for o in meta["outputs"]], ["probabilities", "label"])
        t = httpclient.InferInput("x", list(self.rows.shape), "FP32")
        t.set_data_from_numpy(self.rows)
        result = self.client.infer("iris", [t])
        probs = result.as_numpy("probabilities")
        self.assertEqual(probs.shape, (64, 3))
        np.testing.assert_allclose(probs, self.probs, atol=1e-6)
        labels = [x.decode() if isinstance(x, bytes) else x for x in result.as_numpy("label")]
        self.assertEqual(labels, [["low", "mid", "high"][i] for i in self.probs.argmax(axis=1)])

    def test_one_row_per_feature_and_output_selection(self):
        tensors = []
        for j in range(6):
            t = httpclient.InferInput(f"f{j}", [1, 1], "FP64")
            t.set_data_from_numpy(self.rows[:1, j:j + 1].astype(np.float64), binary_data=False)
            tensors.append(t)
        result = self.client.infer("iris", tensors,
                                   outputs=[httpclient.InferRequestedOutput("label")])
        response = result.get_response()
        self.assertEqual([o["name"] for o in response["outputs"]], ["label"])
        self.assertIsNone(result.as_numpy("probabilities"))
        self.assertEqual(len(result.as_numpy("label")), 1)

    def test_repository_extension_behind_the_admin_token(self):
        admin = {"Authorization": "Bearer s3cret"}
        with self.assertRaises(InferenceServerException) as e:
            self.client.get_model_repository_index()
        self.assertEqual(e.exception.status(), "401")
        index = self.client.get_model_repository_index(headers=admin)
        states = {(m["name"], m["version"]): m["state"] for m in index}
        self.assertEqual(states[("iris", "1")], "READY")
        self.assertEqual(states[("binary", "2")], "READY")
        try:
            self.client.unload_model("reg", headers=admin)
            self.assertFalse(self.client.is_model_ready("reg"))
            ready = self.client.get_model_repository_index(headers=admin)
            self.assertNotIn("reg", [m["name"] for m in ready if m["state"] == "READY"])
        finally:
            self.client.load_model("reg", headers=admin)
        self.assertTrue(self.client.is_model_ready("reg"))
        with self.assertRaises(InferenceServerException) as e:
            self.client.load_model("nope", headers=admin)
        self.assertEqual(e.exception.status(), "404")
        self.assertIn("nope", e.exception.message())

    def test_several_models_by_name_and_version(self):
        row = {"inputs": [{"name": "f1", "datatype": "FP32", "shape": [1], "data": [0.5]}]}
        port = self.server.port
        native = requests.post(f"http://127.0.0.1:{port}/v2/models/binary/versions/1/infer",
                               json=row, timeout=10).json()
        reference = requests.post(f"http://127.0.0.1:{port}/v2/models/binary/infer", json=row,
                                  timeout=10).json()
        self.assertEqual((native["model_version"], reference["model_version"]), ("1", "2"))
        self.assertAlmostEqual(native["outputs"][0]["data"][0],
                               reference["outputs"][0]["data"][0], delta=1e-6)
        reg = requests.post(f"http://127.0.0.1:{port}/v2/models/reg/infer", json=row,
                            timeout=10).json()
        self.assertEqual(reg["outputs"][0]["name"], "value")


if __name__ == "__main__":
    unittest.main(verbosity=2)
