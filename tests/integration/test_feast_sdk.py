"""Feast's own SDK against a real `rtml serve`, as a Feast user would use it.

A Feast repo is generated from the demo's features.yaml (entities, feature
views with their push sources, feature services), plus one view, push source
and service that rtml does not have, to see the server's errors come back as
Feast's exception classes. `feast apply` records it in a local registry; the
SDK's online store is `type: remote` pointed at rtml. Runs in the project's
test virtualenv (.venv, pinned feast from PyPI; scripts/install-venv.sh).
"""
import csv
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

import requests
import yaml

import feast
from feast import FeatureStore
from feast.errors import (FeastError, FeatureServiceNotFoundException,
                          FeatureViewNotFoundException, PushSourceNotFoundException)
from feast.protos.feast.serving.ServingService_pb2 import FieldStatus

from harness import FRAUD, Server, fraud_demo_config

FEAST_TYPES = {"float": "Float64", "int64": "Int64", "bool": "Bool", "string": "String"}
ENTITY_TYPES = {"int64": "INT64", "string": "STRING"}
# What rtml does not define: its errors must reach the SDK as Feast's classes.
EXTRA = '''
merchant = Entity(name="merchant", join_keys=["merchant_id"], value_type=ValueType.INT64)
merchant_source = FileSource(path={parquet!r}, timestamp_field="event_timestamp")
merchant_push = PushSource(name="merchant_push", batch_source=merchant_source)
merchant_stats = FeatureView(name="merchant_stats", entities=[merchant], ttl=timedelta(days=1),
                             schema=[Field(name="chargeback_rate", dtype=Float64)],
                             online=True, source=merchant_push)
missing_service = FeatureService(name="missing_service", features=[merchant_stats])
'''


def feast_repo_source(features_yaml, parquet, listing):
    """Python definitions for a Feast repo mirroring rtml's features.yaml.
    Stream feature views (computed by rtml) become plain feature views with
    their outputs as fields, as rtml lists them (GET /v1/features)."""
    with open(features_yaml) as f:
        d = yaml.safe_load(f)
    for v in listing["feature_views"]:
        if v.get("stream"):
            d["feature_views"].append({
                "name": v["name"], "entities": v["entities"], "ttl_seconds": 0,
                "source": {"timestamp_field": "event_timestamp"},
                "features": [{"name": f["name"], "dtype": f["dtype"]} for f in v["features"]]})
    out = ["from datetime import timedelta",
           "from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource, "
           "ValueType",
           "from feast.types import Bool, Float64, Int64, String", ""]
    for e in d["entities"]:
        out.append(f'{e["name"]} = Entity(name={e["name"]!r}, join_keys=[{e["join_key"]!r}], '
                   f'value_type=ValueType.{ENTITY_TYPES[e["dtype"]]})')
    for v in d["feature_views"]:
        name = v["name"]
        ts = v.get("source", {}).get("timestamp_field", "event_timestamp")
        fields = ", ".join(f'Field(name={f["name"]!r}, dtype={FEAST_TYPES[f["dtype"]]})'
                           for f in v["features"])
        out += [f'{name}_source = FileSource(path={parquet!r}, timestamp_field={ts!r})',
                f'{name}_push = PushSource(name={v.get("push_source", name)!r}, '
                f'batch_source={name}_source)',
                f'{name} = FeatureView(name={name!r}, entities=[{", ".join(v["entities"])}], '
                f'ttl=timedelta(seconds={v.get("ttl_seconds", 0)}), schema=[{fields}], '
                f'online=True, source={name}_push)']
    for s in d.get("feature_services", []):
        projections = {}
        for ref in s["features"]:
            view, feature = ref.split(":")
            projections.setdefault(view, []).append(feature)
        items = ", ".join(f'{v}[[{", ".join(repr(f) for f in fs)}]]'
                          for v, fs in projections.items())
        out.append(f'{s["name"]} = FeatureService(name={s["name"]!r}, features=[{items}])')
    return "\n".join(out) + "\n" + EXTRA.format(parquet=parquet)


def latest_rows(path):
    """The newest row per user of a user_profile CSV (what the store holds)."""
    rows = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            u = int(r["user_id"])
            if u not in rows or r["event_timestamp"] > rows[u]["event_timestamp"]:
                rows[u] = r
    return rows


def now_utc():
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


class FeastSdkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.config = fraud_demo_config(cls.dir.name, store="rocksdb", users=300)
        cls.csv = os.path.join(cls.dir.name, "data", "user_profile.csv")
        cls.server = Server(config=cls.config)
        cls.url = f"http://127.0.0.1:{cls.server.port}"
        repo = os.path.join(cls.dir.name, "feast_repo")
        os.makedirs(repo)
        parquet = os.path.join(cls.dir.name, "user_profile.parquet")
        import pandas as pd
        pd.read_csv(cls.csv, parse_dates=["event_timestamp"]).to_parquet(parquet)
        with open(os.path.join(repo, "features.py"), "w") as f:
            f.write(feast_repo_source(os.path.join(cls.dir.name, "features.yaml"), parquet,
                                      cls.server.request("GET", "/v1/features")[1]))
        with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
            f.write(textwrap.dedent(f"""\
                project: fraud
                registry: {os.path.join(repo, "registry.db")}
                provider: local
                online_store:
                  type: remote
                  path: {cls.url}
                offline_store:
                  type: file
                entity_key_serialization_version: 3
                """))
        feast_cli = os.path.join(os.path.dirname(sys.executable), "feast")
        r = subprocess.run([feast_cli, "-c", repo, "apply"], capture_output=True, text=True,
                           timeout=120)
        if r.returncode != 0:
            cls.server.stop()
            raise RuntimeError("feast apply failed:\n" + r.stdout + r.stderr)
        cls.store = FeatureStore(repo_path=repo)
        cls.rows = latest_rows(cls.csv)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.dir.cleanup()

    FLOATS = ["avg_amount_30d", "credit_limit", "utilization"]
    INTS = ["account_age_days", "card_age_days", "user_age", "email_age_days", "chargebacks_365d"]
    ALL = FLOATS + INTS + ["home_country"]

    def read(self, users, features=None, full=False):
        features = features or [f"user_profile:{f}" for f in self.ALL]
        return self.store.get_online_features(features=features,
                                              entity_rows=[{"user_id": u} for u in users],
                                              full_feature_names=full)

    def assert_row(self, got, i, row, prefix=""):
        for f in self.FLOATS:
            self.assertIsInstance(got[prefix + f][i], float, f)
            self.assertAlmostEqual(got[prefix + f][i], float(row[f]), places=9, msg=f)
        for f in self.INTS:
            value = got[prefix + f][i]
            self.assertTrue(isinstance(value, int) and not isinstance(value, bool), f)
            self.assertEqual(value, int(row[f]), f)
        if prefix + "home_country" in got:
            self.assertEqual(got[prefix + "home_country"][i], row["home_country"])

    def test_feast_is_the_pinned_release(self):
        self.assertEqual(feast.__version__, "0.67.0")

    def test_read_by_feature_list_gives_the_stored_values_and_types(self):
        users = [1, 7, 42, 299]
        resp = self.read(users + [999999])
        got = resp.to_dict()
        self.assertEqual(got["user_id"], users + [999999])
        for i, u in enumerate(users):
            self.assert_row(got, i, self.rows[u])
        self.assertIsNone(got["avg_amount_30d"][-1])
        statuses = resp.proto.results[1].statuses  # results[0] is the join key
        self.assertEqual(list(statuses), [FieldStatus.PRESENT] * 4 + [FieldStatus.NOT_FOUND])
        df = resp.to_df()
        self.assertEqual(str(df["avg_amount_30d"].dtype), "float64")
        self.assertEqual(str(df["credit_limit"].dtype), "float64")  # whole values: 2500.0

    def test_read_by_service_plain_and_full_names(self):
        service = self.store.get_feature_service("fraud_v1")
        users = [3, 4]
        plain = self.read(users, features=service).to_dict()
        full = self.read(users, features=service, full=True).to_dict()
        windows = ["txn_count_1h", "txn_count_24h", "amount_sum_24h", "seconds_since_last_txn"]
        self.assertEqual(sorted(plain), sorted(["user_id"] + self.FLOATS + self.INTS + windows))
        self.assertIn("user_profile__avg_amount_30d", full)
        self.assertIn("user_txn__txn_count_1h", full)
        # No transactions streamed for them: counts and sums are 0, no last one.
        self.assertEqual(plain["txn_count_1h"], [0, 0])
        self.assertEqual(plain["seconds_since_last_txn"], [None, None])
        for i, u in enumerate(users):
            self.assert_row(plain, i, self.rows[u])
            self.assert_row(full, i, self.rows[u], prefix="user_profile__")

    def profile_df(self, user, ts, avg):
        import pandas as pd
        return pd.DataFrame({
            "user_id": [user], "event_timestamp": [ts], "avg_amount_30d": [avg],
            "account_age_days": [10], "card_age_days": [5], "user_age": [33],
            "credit_limit": [3000.0], "utilization": [0.25], "email_age_days": [90],
            "chargebacks_365d": [1], "home_country": ["PT"]})

    def test_push_then_read_back(self):
        self.store.push("user_profile_push", self.profile_df(9001, now_utc(), 123.5))
        got = self.read([9001]).to_dict()
        self.assertEqual((got["avg_amount_30d"], got["credit_limit"], got["user_age"],
                          got["home_country"]), ([123.5], [3000.0], [33], ["PT"]))
        self.store.write_to_online_store("user_profile", self.profile_df(9001, now_utc() +
                                                                         dt.timedelta(seconds=1),
                                                                         77.0))
        self.assertEqual(self.read([9001]).to_dict()["avg_amount_30d"], [77.0])

    def append_source_rows(self, rows):
        """Adds rows to the server's offline source file (as a batch job would)."""
        with open(self.csv) as f:
            header = next(csv.reader(f))
        with open(self.csv, "a", newline="") as f:
            w = csv.writer(f)
            for r in rows:
                w.writerow([r.get(c, "") for c in header])

    def source_row(self, user, ts, avg):
        return {"user_id": user, "event_timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "avg_amount_30d": avg, "account_age_days": 1, "card_age_days": 1, "user_age": 40,
                "credit_limit": 1000, "utilization": 0.5, "email_age_days": 1,
                "chargebacks_365d": 0, "home_country": "NO"}

    def test_materialize_and_materialize_incremental_run_on_the_server(self):
        t = now_utc() - dt.timedelta(minutes=5)
        self.append_source_rows([self.source_row(9100, t, 11.0),
                                 self.source_row(9101, t + dt.timedelta(minutes=1), 12.0)])
        # A window that holds only 9100's row.
        self.store.materialize(t - dt.timedelta(seconds=30), t + dt.timedelta(seconds=30),
                               feature_views=["user_profile"])
        got = self.read([9100, 9101]).to_dict()
        self.assertEqual(got["avg_amount_30d"], [11.0, None])
        self.assertEqual(got["credit_limit"], [1000.0, None])  # a whole float stays a float
        self.assertIsInstance(got["credit_limit"][0], float)
        # Incremental: from the last end (t + 30 s) to now: 9101's row.
        self.store.materialize_incremental(now_utc() + dt.timedelta(seconds=1))
        self.assertEqual(self.read([9101]).to_dict()["avg_amount_30d"], [12.0])

    def test_materialize_over_http_reports_rows_and_rejections(self):
        t = now_utc() - dt.timedelta(minutes=2)
        bad = self.source_row(9200, t, "lots")
        self.append_source_rows([bad, self.source_row(9201, t, 5.0)])
        r = requests.post(self.url + "/materialize", json={
            "start_ts": (t - dt.timedelta(seconds=1)).isoformat(),
            "end_ts": (t + dt.timedelta(seconds=1)).isoformat(),
            "feature_views": ["user_profile"], "disable_event_timestamp": False,
            "full_feature_names": False}, timeout=60)
        self.assertEqual(r.status_code, 200, r.text)
        view = r.json()["views"][0]
        self.assertEqual((view["feature_view"], view["written"], view["rejected"]),
                         ("user_profile", 1, 1))
        self.assertEqual(view["rejections"][0]["column"], "avg_amount_30d")
        self.assertEqual(self.read([9200, 9201]).to_dict()["avg_amount_30d"], [None, 5.0])

    # Errors: each kind comes back as Feast's own exception class.
    def test_unknown_feature_view_raises_feasts_exception(self):
        with self.assertRaises(FeatureViewNotFoundException) as e:
            self.read([1], features=["merchant_stats:chargeback_rate"])
        self.assertIn("merchant_stats", str(e.exception))

    def test_unknown_feature_service_raises_feasts_exception(self):
        service = self.store.get_feature_service("missing_service")
        with self.assertRaises(FeatureServiceNotFoundException) as e:
            self.read([1], features=service)
        self.assertIn("missing_service", str(e.exception))

    def test_push_to_a_view_rtml_lacks_raises_feasts_exception(self):
        import pandas as pd
        df = pd.DataFrame({"merchant_id": [5], "event_timestamp": [now_utc()],
                           "chargeback_rate": [0.1]})
        with self.assertRaises(FeatureViewNotFoundException):
            self.store.push("merchant_push", df)

    def test_unknown_push_source_over_http_is_feasts_422(self):
        r = requests.post(self.url + "/push", json={"push_source_name": "nope", "df": {},
                                                    "to": "online"}, timeout=10)
        self.assertEqual(r.status_code, 422)
        self.assertIsInstance(FeastError.from_error_detail(r.json()), PushSourceNotFoundException)

    def test_bad_rows_fail_a_write_whole_with_feasts_error(self):
        r = requests.post(self.url + "/write-to-online-store", json={
            "feature_view_name": "user_profile", "allow_registry_cache": False,
            "df": {**{c: [1, 2] for c in ["user_id"] + self.INTS},
                   "event_timestamp": [now_utc().isoformat(), "not a time"],
                   "avg_amount_30d": [1.0, 2.0], "credit_limit": [1.0, 2.0],
                   "utilization": [0.1, 0.2], "home_country": ["FR", "FR"], "created": [None, None]}},
            timeout=10)
        self.assertEqual(r.status_code, 400, r.text)
        err = FeastError.from_error_detail(r.json())
        self.assertEqual(type(err), FeastError)
        self.assertIn("row 1, column event_timestamp", str(err))
        self.assertIn("nothing written", str(err))

    def test_materialize_errors_name_the_problem(self):
        with self.assertRaises(RuntimeError) as e:  # the SDK wraps materialize errors
            self.store.materialize(now_utc(), now_utc() - dt.timedelta(hours=1))
        self.assertIn("400", str(e.exception))
        self.assertIn("must be before end_ts", str(e.exception))
        with self.assertRaises(RuntimeError) as e:
            self.store.materialize_incremental(now_utc(), feature_views=["merchant_stats"])
        self.assertIn("FeatureViewNotFoundException", str(e.exception))


if __name__ == "__main__":
    unittest.main(verbosity=2)
