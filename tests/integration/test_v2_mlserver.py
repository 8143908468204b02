"""A second opinion on rtml's Open Inference Protocol: Seldon MLServer's own
V2 code (mlserver 1.7.1 from PyPI, in .venv-mlserver) as the client, instead
of Triton's. Requests are built with MLServer's types and codecs
(NumpyCodec for one [N, 30] tensor, PandasCodec for a data frame's columns
as per-feature tensors with an entity key), sent over REST as MLServer's
pydantic models serialize them, and every answer must validate as MLServer's
InferenceResponse and decode with its codecs; over gRPC, MLServer's
converters turn the same request into its dataplane.proto message (typed
contents, or raw) and rtml's answer back into an InferenceResponse. The
predictions must equal XGBoost's (PyPI's current release, in the same venv).
"""
import json
import os
import tempfile
import unittest
import urllib.error
import urllib.request
import warnings

import grpc
import numpy as np
import pandas as pd
import xgboost as xgb
from mlserver.codecs import NumpyCodec, PandasCodec
from mlserver.grpc import dataplane_pb2_grpc
from mlserver.grpc.converters import (ModelInferRequestConverter, ModelInferResponseConverter,
                                      ModelMetadataResponseConverter)
from mlserver.grpc import dataplane_pb2 as pb
from mlserver.types import InferenceRequest, InferenceResponse, MetadataModelResponse

from harness import FRAUD, Server, fraud_demo_config, free_port

FRAUD_MODEL = os.path.join(FRAUD, "models", "fraud", "1", "model.json")
# MLServer 1.7.1 still calls pydantic 1's construct(): its warnings, not ours.
warnings.filterwarnings("ignore", category=DeprecationWarning, module="mlserver")


class MLServerClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.server = Server("--grpc-port", str(free_port()),
                            config=fraud_demo_config(cls.dir.name))
        cls.base = f"http://127.0.0.1:{cls.server.port}"
        cls.inputs = cls.server.request("GET", "/v1/models/fraud")[1]["inputs"]
        cls.channel = grpc.insecure_channel(f"127.0.0.1:{cls.server.grpc_port}")
        cls.stub = dataplane_pb2_grpc.GRPCInferenceServiceStub(cls.channel)
        cls.booster = xgb.Booster(model_file=FRAUD_MODEL)
        cls.booster.set_param({"nthread": 1})

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.server.stop()
        cls.dir.cleanup()

    def rows(self, n, seed):
        """n rows in model order, each input within its bounds and of its type."""
        rng = np.random.default_rng(seed)
        cols = []
        for spec in self.inputs:
            lo = spec.get("min", 0.0)
            hi = min(spec.get("max", 1000.0), lo + 1000.0)
            if spec["dtype"] == "bool":
                cols.append(rng.integers(0, 2, n).astype(np.float32))
            elif spec["dtype"] == "int":
                cols.append(rng.integers(int(lo), int(hi) + 1, n).astype(np.float32))
            else:
                cols.append(rng.uniform(lo, hi, n).astype(np.float32))
        return np.stack(cols, axis=1)

    def xgboost(self, rows):
        return self.booster.inplace_predict(rows)

    def post(self, path, body):
        req = urllib.request.Request(self.base + path, data=body.encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_rest_numpy_tensor_equals_xgboost(self):
        rows = self.rows(32, seed=21)
        request = InferenceRequest(id="np-1", inputs=[NumpyCodec.encode_input("x", rows)])
        status, body = self.post("/v2/models/fraud/infer", request.model_dump_json())
        self.assertEqual(status, 200, body)
        response = InferenceResponse.model_validate_json(body)  # MLServer's schema
        self.assertEqual((response.model_name, response.model_version, response.id),
                         ("fraud", "1", "np-1"))
        got = NumpyCodec.decode_output(response.outputs[0])
        np.testing.assert_allclose(got.reshape(-1), self.xgboost(rows), atol=1e-6)

    def test_rest_data_frame_columns_with_an_entity_key(self):
        frame = pd.DataFrame({"user_id": np.array([101, 102, 103], dtype=np.int64),
                              "amount": np.array([12.5, 900.0, 40.0]),
                              "hour_of_day": np.array([3, 14, 23], dtype=np.int64)})
        request = PandasCodec.encode_request(frame)
        status, body = self.post("/v2/models/fraud/infer", request.model_dump_json())
        self.assertEqual(status, 200, body)
        response = InferenceResponse.model_validate_json(body)
        got = NumpyCodec.decode_output(response.outputs[0]).reshape(-1)
        native = []
        for user, amount, hour in frame.itertuples(index=False):
            s, r, _ = self.server.request("POST", "/predict", {"user_id": int(user),
                                                               "amount": float(amount),
                                                               "hour_of_day": int(hour)})
            self.assertEqual(s, 200, r)
            native.append(r["prediction"])
        np.testing.assert_allclose(got, native, atol=1e-7)
        self.assertEqual(response.parameters.model_extra.get("feature_store"), "ok")

    def test_rest_metadata_validates_as_mlservers(self):
        with urllib.request.urlopen(self.base + "/v2/models/fraud", timeout=10) as r:
            meta = MetadataModelResponse.model_validate_json(r.read())
        self.assertEqual(meta.name, "fraud")
        names = [t.name for t in meta.inputs]
        self.assertEqual(names[:len(self.inputs)], [s["name"] for s in self.inputs])
        self.assertEqual(meta.outputs[0].name, "probability")

    def test_rest_bad_request_is_a_4xx_with_an_error(self):
        bad = InferenceRequest(inputs=[NumpyCodec.encode_input("x", np.zeros((1, 7), np.float32))])
        status, body = self.post("/v2/models/fraud/infer", bad.model_dump_json())
        self.assertEqual(status, 400, body)
        error = json.loads(body)
        self.assertIn("unknown input 'x'", error["error"])
        self.assertEqual(error["reason"], "unknown_input")

    def test_grpc_through_mlservers_converters(self):
        rows = self.rows(8, seed=22)
        expected = self.xgboost(rows)
        for raw in (False, True):
            with self.subTest(raw=raw):
                request = InferenceRequest(id="g", inputs=[NumpyCodec.encode_input("x", rows)])
                message = ModelInferRequestConverter.from_types(request, model_name="fraud",
                                                                use_raw=raw)
                answer = self.stub.ModelInfer(message, timeout=10)
                self.assertEqual(bool(answer.raw_output_contents), raw)  # answered alike
                response = ModelInferResponseConverter.to_types(answer)
                self.assertEqual(response.id, "g")
                got = NumpyCodec.decode_output(response.outputs[0]).reshape(-1)
                np.testing.assert_allclose(got, expected, atol=1e-6)
        meta = ModelMetadataResponseConverter.to_types(
            self.stub.ModelMetadata(pb.ModelMetadataRequest(name="fraud"), timeout=10))
        self.assertEqual(meta.platform, "rtml_native")
        self.assertTrue(self.stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready)


if __name__ == "__main__":
    unittest.main(verbosity=2)
