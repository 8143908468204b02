"""The Open Inference Protocol (KServe V2) over gRPC, driven by Triton's own
client (tritonclient.grpc from PyPI, in the project's test virtualenv) as a
Triton or KServe user would: health, metadata, and inference of one row and
of batches (tritonclient sends raw_input_contents), per-feature tensors and
one matrix tensor, equal to XGBoost's predictions, for the fraud model (with
its feature service fed by an entity-key tensor) and a multi-class model.
Requests with typed `contents`, which tritonclient never sends, go through
the stub generated from Triton's own grpc_service.proto (shipped with
tritonclient), so rtml's .proto is checked against another's. Bad requests
(wrong datatype, wrong shape, unknown input, truncated raw data, ...) get
INVALID_ARGUMENT or NOT_FOUND naming what was wrong, and no crash.
"""
import functools
import os
import signal
import tempfile
import time
import unittest

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from harness import Server, fraud_demo_config, free_port, wait_for
from test_v2 import (DTYPES, FRAUD_MODEL, NUMPY, PARITY, TESTDATA_MODELS, fraud_rows,
                     xgboost_predict)


def grpc_tensors(inputs, rows):
    """One tritonclient.grpc InferInput per feature, typed as the metadata says."""
    tensors = []
    for j, spec in enumerate(inputs):
        datatype = DTYPES[spec["dtype"]]
        t = grpcclient.InferInput(spec["name"], [len(rows)], datatype)
        t.set_data_from_numpy(np.asarray([r[j] for r in rows]).astype(NUMPY[datatype]))
        tensors.append(t)
    return tensors


class FraudGrpcTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.server = Server("--grpc-port", str(free_port()),
                            config=fraud_demo_config(cls.dir.name))
        cls.target = f"127.0.0.1:{cls.server.grpc_port}"
        cls.client = grpcclient.InferenceServerClient(url=cls.target)
        cls.inputs = cls.server.request("GET", "/v1/models/fraud")[1]["inputs"]
        cls.channel = grpc.insecure_channel(cls.target)
        cls.stub = service_pb2_grpc.GRPCInferenceServiceStub(cls.channel)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.client.close()
        cls.server.stop()
        cls.dir.cleanup()

    def test_health_and_metadata(self):
        self.assertTrue(self.client.is_server_live())
        self.assertTrue(self.client.is_server_ready())
        self.assertTrue(self.client.is_model_ready("fraud"))
        self.assertTrue(self.client.is_model_ready("fraud", "1"))
        self.assertFalse(self.client.is_model_ready("nope"))
        self.assertFalse(self.client.is_model_ready("fraud", "7"))
        server = self.client.get_server_metadata(as_json=True)
        self.assertEqual(server["name"], "rtml")
        meta = self.client.get_model_metadata("fraud", as_json=True)
        self.assertEqual((meta["name"], meta["versions"], meta["platform"]),
                         ("fraud", ["1"], "rtml_native"))
        by_name = {t["name"]: t for t in meta["inputs"]}
        for spec in self.inputs:
            self.assertEqual(by_name[spec["name"]]["datatype"], DTYPES[spec["dtype"]])
            self.assertEqual(by_name[spec["name"]]["shape"], ["-1"])  # int64 in proto JSON
        self.assertEqual(by_name["user_id"]["datatype"], "INT64")  # the feature service's key
        self.assertEqual([o["name"] for o in meta["outputs"]], ["probability"])
        health = self.channel.unary_unary("/grpc.health.v1.Health/Check")
        self.assertEqual(health(b"", timeout=10), b"\x08\x01")  # gRPC's own: SERVING
        with self.assertRaises(InferenceServerException) as e:
            self.client.get_model_metadata("nope")
        self.assertEqual(e.exception.status(), "StatusCode.NOT_FOUND")
        self.assertIn("unknown model 'nope'", e.exception.message())

    def test_statistics_count_what_was_scored(self):
        self.assertIn("statistics", self.client.get_server_metadata(as_json=True)["extensions"])

        def fraud_stats():
            (stats,) = self.client.get_inference_statistics("fraud", "1", as_json=True)[
                "model_stats"]
            return stats

        before = fraud_stats()
        self.client.infer("fraud", grpc_tensors(self.inputs, fraud_rows(self.inputs, 7, seed=22)))
        after = fraud_stats()
        # proto3 JSON: 64-bit integers are strings, zeros are left out.
        count = lambda s, *path: int(functools.reduce(lambda d, k: d.get(k, {}), path, s) or 0)
        self.assertEqual(count(after, "inference_count") - count(before, "inference_count"), 7)
        self.assertEqual(count(after, "execution_count") - count(before, "execution_count"), 1)
        for stat in ("success", "queue", "compute_infer"):
            self.assertEqual(count(after, "inference_stats", stat, "count")
                             - count(before, "inference_stats", stat, "count"), 1, stat)
        self.assertLessEqual(abs(count(after, "last_inference") - time.time() * 1000), 5000)
        with self.assertRaises(InferenceServerException) as e:
            self.client.get_inference_statistics("nope")
        self.assertEqual(e.exception.status(), "StatusCode.NOT_FOUND")

    def test_one_row_equals_xgboost(self):
        rows = fraud_rows(self.inputs, 1, seed=11)
        result = self.client.infer("fraud", grpc_tensors(self.inputs, rows), request_id="one")
        got = result.as_numpy("probability")
        self.assertEqual(got.shape, (1,))
        self.assertAlmostEqual(float(got[0]), xgboost_predict(FRAUD_MODEL, rows)[0], delta=1e-6)
        response = result.get_response(as_json=True)
        self.assertEqual((response["id"], response["model_name"], response["model_version"]),
                         ("one", "fraud", "1"))
        self.assertEqual(response["parameters"]["feature_store"]["string_param"], "ok")

    def test_batch_and_matrix_equal_xgboost(self):
        rows = fraud_rows(self.inputs, 64, seed=12)
        expected = xgboost_predict(FRAUD_MODEL, rows)
        result = self.client.infer("fraud", grpc_tensors(self.inputs, rows))
        np.testing.assert_allclose(result.as_numpy("probability"), expected, atol=1e-6)
        t = grpcclient.InferInput("input", [64, len(self.inputs)], "FP32")
        t.set_data_from_numpy(np.asarray(rows, dtype=np.float32))
        matrix = self.client.infer("fraud", [t], model_version="1",
                                   outputs=[grpcclient.InferRequestedOutput("probability")])
        np.testing.assert_allclose(matrix.as_numpy("probability"), expected, atol=1e-6)

    def test_typed_contents_through_tritons_own_proto(self):
        rows = fraud_rows(self.inputs, 3, seed=13)
        request = service_pb2.ModelInferRequest(model_name="fraud", id="typed")
        for j, spec in enumerate(self.inputs):
            t = request.inputs.add(name=spec["name"], datatype=DTYPES[spec["dtype"]],
                                   shape=[len(rows)])
            column = [r[j] for r in rows]
            if spec["dtype"] == "int":
                t.contents.int64_contents.extend(int(x) for x in column)
            elif spec["dtype"] == "bool":
                t.contents.bool_contents.extend(bool(x) for x in column)
            else:
                t.contents.fp32_contents.extend(column)
        response = self.stub.ModelInfer(request, timeout=10)
        self.assertEqual(response.id, "typed")
        self.assertEqual(len(response.raw_output_contents), 0)  # typed in, typed out
        np.testing.assert_allclose(list(response.outputs[0].contents.fp32_contents),
                                   xgboost_predict(FRAUD_MODEL, rows), atol=1e-6)

    def test_entity_key_tensor_reads_the_feature_store(self):
        users, amounts = [101, 102, 103], [12.5, 900.0, 40.0]
        key = grpcclient.InferInput("user_id", [3], "INT64")
        key.set_data_from_numpy(np.asarray(users, dtype=np.int64))
        amount = grpcclient.InferInput("amount", [3, 1], "FP64")
        amount.set_data_from_numpy(np.asarray([[a] for a in amounts]))
        result = self.client.infer("fraud", [key, amount])
        native = []
        for user, a in zip(users, amounts):
            status, resp, _ = self.server.request("POST", "/predict", {"user_id": user, "amount": a})
            self.assertEqual(status, 200, resp)
            self.assertNotIn("user_age", resp["defaulted"])  # read from the store
            native.append(resp["prediction"])
        np.testing.assert_allclose(result.as_numpy("probability"), native, atol=1e-7)
        text = grpcclient.InferInput("user_id", [3], "BYTES")
        text.set_data_from_numpy(np.asarray([b"101", b"102", b"103"], dtype=np.object_))
        again = self.client.infer("fraud", [text, amount])
        np.testing.assert_allclose(again.as_numpy("probability"), native, atol=1e-7)

    def test_deadlines(self):
        tensors = grpc_tensors(self.inputs, fraud_rows(self.inputs, 1, seed=14))
        ok = self.client.infer("fraud", tensors, timeout=10_000_000, client_timeout=10)
        self.assertEqual(ok.as_numpy("probability").shape, (1,))
        # 1 µs, in the parameters, counted from the call's arrival: reading
        # and decoding a batch of 1,024 rows (the most a request carries)
        # alone takes longer, so the model is never run.
        batch = grpc_tensors(self.inputs, fraud_rows(self.inputs, 1024, seed=15))
        with self.assertRaises(InferenceServerException) as e:
            self.client.infer("fraud", batch, timeout=1)
        self.assertEqual(e.exception.status(), "StatusCode.DEADLINE_EXCEEDED")
        self.assertIn("deadline passed", e.exception.message())
        self.assertEqual(self.client.infer("fraud", batch, timeout=10_000_000)
                         .as_numpy("probability").shape, (1024,))

    def assert_error(self, call, code, reason, *words):
        with self.assertRaises(grpc.RpcError) as e:
            call()
        self.assertEqual(e.exception.code(), code, e.exception.details())
        trailing = dict(e.exception.trailing_metadata() or ())
        self.assertEqual(trailing.get("rtml-reason"), reason, e.exception.details())
        for w in words:
            self.assertIn(w, e.exception.details())

    def infer(self, inputs, raw=None, model="fraud", **kw):
        request = service_pb2.ModelInferRequest(model_name=model, **kw)
        for name, datatype, shape, values in inputs:
            t = request.inputs.add(name=name, datatype=datatype, shape=shape)
            if values is not None:
                t.contents.fp32_contents.extend(values)
        if raw is not None:
            request.raw_input_contents.extend(raw)
        return lambda: self.stub.ModelInfer(request, timeout=10)

    def test_bad_requests_are_told_what_is_wrong(self):
        bad = grpc.StatusCode.INVALID_ARGUMENT
        amount = ("amount", "FP32", [1], [10.0])
        cases = [
            (self.infer([("amount", "BYTES", [1], None)], raw=[b"\x01\x00\x00\x00x"]), bad,
             "wrong_datatype", "'amount'", "BYTES"),
            (self.infer([("amount", "FP17", [1], [1.0])]), bad, "wrong_datatype", "FP17"),
            (self.infer([("amount", "FP32", [1, 2], [1.0, 2.0])]), bad, "wrong_shape",
             "[N] or [N, 1]"),
            (self.infer([("amount", "FP32", [2], [1.0])]), bad, "wrong_shape", "1 values",
             "says 2"),
            (self.infer([amount, ("colour", "FP32", [1], [1.0])]), bad, "unknown_input",
             "'colour'"),
            (self.infer([("amount", "FP32", [1], [-5.0])]), bad, "out_of_range", "outside"),
            (self.infer([("amount", "FP32", [2], None)], raw=[np.float32(1).tobytes()]), bad,
             "bad_binary_data", "4 bytes", "take 8"),
            (self.infer([("amount", "FP32", [1], None), ("hour_of_day", "INT64", [1], None)],
                        raw=[np.float32(1).tobytes()]), bad, "bad_binary_data",
             "raw_input_contents has 1 entries for 2"),
            (self.infer([amount], outputs=[{"name": "logits"}]), bad, "unknown_output",
             "'logits'"),
            (self.infer([]), bad, "bad_request", "no inputs"),
            (self.infer([amount], model="nope"), grpc.StatusCode.NOT_FOUND, "unknown_model",
             "'nope'"),
            (self.infer([amount], model_version="3"), grpc.StatusCode.NOT_FOUND,
             "unknown_version"),
        ]
        for call, code, reason, *words in cases:
            with self.subTest(reason=reason, words=words):
                self.assert_error(call, code, reason, *words)
        junk = self.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        self.assert_error(lambda: junk(b"\xff\xff\xff\xff", timeout=10), bad,
                          "malformed_request")
        with self.assertRaises(grpc.RpcError) as e:  # Triton's extensions are not served
            self.stub.RepositoryIndex(service_pb2.RepositoryIndexRequest(), timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertTrue(self.server.alive())

    def test_grpc_requests_are_counted_on_their_own_path(self):
        self.client.infer("fraud", grpc_tensors(self.inputs, fraud_rows(self.inputs, 2, 15)))
        metrics = self.server.request("GET", "/metrics")[1]
        self.assertRegex(metrics, r'rtml_requests_total\{model="fraud",version="1",'
                                  r'path="v2_grpc",outcome="ok"\} [1-9]')
        self.assertRegex(metrics, r'rtml_grpc_requests_total\{method="ModelInfer"\} [1-9]')
        series = self.server.request("GET", "/v1/stats")[1]["series"]
        grpc_series = [s for s in series if s["path"] == "v2_grpc" and s["model"] == "fraud"]
        self.assertGreater(grpc_series[0]["5m"]["count"], 0)


class MultiClassGrpcTest(unittest.TestCase):
    """iris: multi:softprob, PyPI XGBoost 3.2's stored predictions."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server("--models", TESTDATA_MODELS, "--grpc-port", str(free_port()))
        cls.client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{cls.server.grpc_port}")
        rows = np.fromfile(os.path.join(PARITY, "rows.f32"), dtype="<f4").reshape(-1, 6)
        probs = np.fromfile(os.path.join(PARITY, "xgb-pypi", "multi_softprob.pred.f32"),
                            dtype="<f4").reshape(-1, 3)
        full = ~np.isnan(rows).any(axis=1)
        cls.rows, cls.probs = rows[full][:64], probs[full][:64]

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.server.stop()

    def test_classes_as_probabilities_and_labels(self):
        meta = self.client.get_model_metadata("iris", as_json=True)
        self.assertEqual([o["name"] for o in meta["outputs"]], ["probabilities", "label"])
        t = grpcclient.InferInput("x", list(self.rows.shape), "FP32")
        t.set_data_from_numpy(self.rows)
        result = self.client.infer("iris", [t])
        probs = result.as_numpy("probabilities").reshape(-1, 3)
        np.testing.assert_allclose(probs, self.probs, atol=1e-6)
        labels = [x.decode() for x in result.as_numpy("label")]
        self.assertEqual(labels, [["low", "mid", "high"][i] for i in self.probs.argmax(axis=1)])

    def test_one_row_and_output_selection(self):
        tensors = []
        for j in range(6):
            t = grpcclient.InferInput(f"f{j}", [1], "FP64")
            t.set_data_from_numpy(self.rows[:1, j].astype(np.float64))
            tensors.append(t)
        result = self.client.infer("iris", tensors,
                                   outputs=[grpcclient.InferRequestedOutput("label")])
        self.assertEqual([o["name"] for o in result.get_response(as_json=True)["outputs"]],
                         ["label"])
        self.assertEqual(result.as_numpy("label")[0].decode(),
                         ["low", "mid", "high"][int(self.probs[0].argmax())])
        with self.assertRaises(InferenceServerException) as e:
            self.client.infer("iris", tensors, model_version="9")
        self.assertEqual(e.exception.status(), "StatusCode.NOT_FOUND")


class DrainGrpcTest(unittest.TestCase):
    def test_a_drain_is_told_while_calls_are_still_served(self):
        with tempfile.TemporaryDirectory() as d:
            config = os.path.join(d, "rtml.yaml")
            with open(config, "w") as f:
                f.write(f"models: {{repository: {TESTDATA_MODELS}}}\nhttp: {{drain_s: 30}}\n")
            server = Server("--grpc-port", str(free_port()), config=config)
            try:
                client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{server.grpc_port}")
                channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
                health = channel.unary_unary("/grpc.health.v1.Health/Check")
                self.assertTrue(client.is_server_ready())
                server.proc.send_signal(signal.SIGTERM)
                wait_for(lambda: health(b"", timeout=5) == b"\x08\x02", 10, "NOT_SERVING")
                self.assertFalse(client.is_server_ready())
                t = grpcclient.InferInput("f1", [1], "FP32")
                t.set_data_from_numpy(np.asarray([0.5], dtype=np.float32))
                self.assertEqual(client.infer("binary", [t]).as_numpy("probability").shape, (1,))
                channel.close()
                client.close()
            finally:
                server.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
