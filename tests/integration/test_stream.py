"""Streaming integration tests on `rtml broker` (librdkafka's mock cluster):
events in, exactly one prediction or dead letter out per event, checked by
id; a consumer group of several `rtml serve` processes, one killed mid-stream;
kcat as the external client on both ends."""
import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

from harness import FRAUD, REPO, RTML, Server, fraud_demo_config, free_port, wait_for



class Broker:
    def __init__(self, partitions=6):
        self.port = free_port()
        self.proc = subprocess.Popen([RTML, "broker", "--port", str(self.port), "--partitions",
                                      str(partitions)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "ready at" not in line:
            raise RuntimeError("rtml broker did not start: " + line)
        self.bootstrap = f"127.0.0.1:{self.port}"

    def produce(self, topic, records):
        """records: (key, value) pairs, sent with kcat."""
        data = "".join(f"{k}\t{v}\n" for k, v in records)
        subprocess.run(["kcat", "-b", self.bootstrap, "-P", "-t", topic, "-K", "\t"],
                       input=data, text=True, check=True, timeout=60)

    def read_all(self, topic, fmt="%k\t%s\n"):
        """Every record in `topic` (all partitions, from the start)."""
        r = subprocess.run(["kcat", "-b", self.bootstrap, "-C", "-t", topic, "-e", "-q", "-f",
                            fmt], capture_output=True, text=True, timeout=60)
        return [line for line in r.stdout.split("\n") if line]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.proc.stdout.close()


def events(n, start=0, bad_every=0):
    out = []
    for i in range(start, start + n):
        if bad_every and i % bad_every == 0:
            out.append((f"k{i}", json.dumps({"id": i, "user_id": i, "amount": "lots",
                                             "event_time": "2026-11-26T06:00:00Z"})))
        else:
            out.append((f"k{i}", json.dumps({"id": i, "user_id": i % 700, "amount": i % 500,
                                             "event_time": "2026-11-26T06:00:00Z"})))
    return out



class StreamTest(unittest.TestCase):
    def setUp(self):
        self.broker = Broker()
        self.dir = tempfile.TemporaryDirectory()
        self.config = fraud_demo_config(self.dir.name)
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        self.broker.stop()
        self.dir.cleanup()

    def serve(self, store_dir=None, extra=""):
        config = self.config
        if store_dir:  # a replica with its own RocksDB folder (one process per folder)
            config = fraud_demo_config(store_dir, extra=extra)
        server = Server("--brokers", self.broker.bootstrap, config=config)
        self.servers.append(server)
        return server

    def outputs(self):
        preds = [json.loads(line.split("\t", 1)[1]) for line in self.broker.read_all("predictions")]
        dlq = self.broker.read_all("ml-features-dlq", "%k\t%s\t%h\n")
        return preds, dlq

    def test_the_stream_follows_the_serving_policy(self):
        models = os.path.join(self.dir.name, "models")
        for v in (1, 2):  # two versions of the fraud model
            shutil.copytree(os.path.join(FRAUD, "models", "fraud", "1"),
                            os.path.join(models, "fraud", str(v)))
        with open(os.path.join(models, "fraud", "serving.yaml"), "w") as f:
            f.write("traffic: {1: 70, 2: 30}\nsticky_key: user_id\n")
        with open(self.config) as f:
            text = f.read()
        with open(self.config, "w") as f:
            f.write(re.sub(r"models: \{repository: [^,]+,", f"models: {{repository: {models},", text))
        self.serve()
        n = 3000
        self.broker.produce("ml-features", events(n))
        preds = wait_for(lambda: (lambda p: p if len(p) >= n else None)(self.outputs()[0]), 90,
                         "all predictions")
        self.assertEqual({(p["version"], p["route"]) for p in preds}, {(1, "traffic"),
                                                                      (2, "traffic")})
        by_user = {}
        for p in preds:
            by_user.setdefault(p["id"] % 700, set()).add(p["version"])
        self.assertTrue(all(len(v) == 1 for v in by_user.values()))  # sticky by user_id
        users_on_2 = sum(1 for v in by_user.values() if 2 in v)
        self.assertTrue(0.22 * 700 <= users_on_2 <= 0.38 * 700, users_on_2)

    def test_every_event_gets_one_prediction_or_dead_letter(self):
        self.serve()
        n = 2000
        self.broker.produce("ml-features", events(n, bad_every=50))
        self.broker.produce("ml-features", [("junk", "not json at all")])

        def done():
            p, d = self.outputs()
            return (p, d) if len(p) + len(d) >= n + 1 else None

        preds, dlq = wait_for(done, 90, "all outputs")
        ids = [p["id"] for p in preds]
        self.assertEqual(len(ids), len(set(ids)), "duplicates without any crash")
        self.assertEqual(len(preds), n - n // 50)
        self.assertEqual(len(dlq), n // 50 + 1)
        self.assertEqual(set(ids) | {int(json.loads(r.split("\t")[1])["id"]) for r in dlq
                                     if r.startswith("k")}, set(range(n)))
        p = preds[0]
        self.assertEqual(p["key"], f"k{p['id']}")
        for field in ("partition", "offset", "event_time", "scoring_latency_us", "model",
                      "version", "prediction", "defaulted", "feature_store"):
            self.assertIn(field, p)
        self.assertEqual(p["event_time"], "2026-11-26T06:00:00Z")
        bad = next(r for r in dlq if r.startswith("k50\t"))
        key, value, headers = bad.split("\t")
        self.assertEqual(json.loads(value), {"id": 50, "user_id": 50, "amount": "lots",
                                             "event_time": "2026-11-26T06:00:00Z"})
        self.assertIn("__connect.errors.topic=ml-features", headers)
        # The user_txn stream view sums amounts: a string is refused before scoring.
        self.assertIn("__connect.errors.exception.class.name=rtml.bad_aggregation_event", headers)
        self.assertIn("rtml.errors.field=amount", headers)
        self.assertIn("__connect.errors.offset=", headers)
        junk = next(r for r in dlq if r.startswith("junk\t"))
        self.assertIn("rtml.malformed_json", junk)
        server = self.servers[0]
        metrics = server.request("GET", "/metrics")[1]
        self.assertRegex(metrics, rf'rtml_stream_events_total\{{topic="ml-features"\}} {n + 1}\n')
        self.assertRegex(metrics, r'rtml_stream_dead_letters_total\{topic="ml-features",'
                                  r'reason="bad_aggregation_event"\} 40\n')
        lag = wait_for(lambda: re.findall(
            r'rtml_stream_consumer_lag\{topic="ml-features",partition="\d+"\} (\d+)',
            server.request("GET", "/metrics")[1]), 10, "lag gauges")
        self.assertEqual(len(lag), 6)
        self.assertRegex(metrics, r'rtml_stream_commit_duration_seconds_count\{topic="ml-features"\} [1-9]')
        self.assertRegex(metrics, r'rtml_requests_total\{model="fraud",version="1",path="stream",'
                                  rf'outcome="ok"\}} {n - n // 50}\n')
        # The bad events and the junk never reached the model: refused by the view.
        self.assertNotRegex(metrics, r'rtml_requests_total\{model="fraud",version="1",'
                                     r'path="stream",outcome="error"\} [1-9]')
        check = subprocess.run(["promtool", "check", "metrics"], input=metrics, text=True,
                               capture_output=True)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        # Every metric the shipped dashboard and alerts use exists here.
        exported = set(re.findall(r"^# TYPE (\S+)", metrics, re.M))
        for path in ("deploy/grafana/rtml-dashboard.json", "deploy/prometheus/rtml-alerts.yml"):
            with open(os.path.join(REPO, path)) as f:
                used = {re.sub(r"_(bucket|sum|count)$", "", n)
                        for n in re.findall(r"\brtml_[a-z0-9_]+", f.read())}
            self.assertEqual(used - exported, set(), path)
        stats = server.request("GET", "/v1/stats")[1]
        stream = next(s for s in stats["series"] if s["path"] == "stream")
        self.assertEqual(stream["5m"]["count"], n - n // 50)
        self.assertEqual(stats["stream"]["events_in"], n + 1)
        self.assertEqual(len(stats["stream"]["partitions"]), 6)
        # HTTP keeps serving beside the stream.
        self.assertEqual(server.request("POST", "/predict", {"user_id": 1, "amount": 3})[0], 200)

    def test_sampled_predictions_are_logged_to_a_kafka_topic(self):
        config = fraud_demo_config(
            self.dir.name, extra="log: {predictions: {rate: 1.0, topic: prediction-log}}\n")
        server = Server("--brokers", self.broker.bootstrap, config=config)
        self.servers.append(server)
        for i in range(30):
            self.assertEqual(server.request("POST", "/predict", {"user_id": i, "amount": 5,
                                                                 "id": f"h{i}"})[0], 200)
        self.broker.produce("ml-features", events(20))

        def logged():
            r = [json.loads(v) for v in self.broker.read_all("prediction-log", "%s\n")]
            return r if len(r) >= 50 else None

        records = wait_for(logged, 60, "50 prediction records on the topic")
        self.assertEqual(len(records), 50)
        http_ids = sorted(r["request"]["id"] for r in records if r["path"] == "http")
        self.assertEqual(http_ids, sorted(f"h{i}" for i in range(30)))
        stream = [r for r in records if r["path"] == "stream"]
        self.assertEqual(sorted(r["request"]["id"] for r in stream), list(range(20)))
        for r in records:
            self.assertEqual(r["request"]["id"], r["response"]["id"])
            self.assertIn("prediction", r["response"])
            self.assertRegex(r["time"], r"^\d{4}-\d\d-\d\dT")
        metrics = wait_for(lambda: (lambda m: m if 'outcome="logged"} 50' in m else None)(
            server.request("GET", "/metrics")[1]), 10, "the logged count")
        self.assertIn('rtml_prediction_log_records_total{sink="kafka",outcome="dropped"} 0',
                      metrics)

    def test_prediction_records_that_cannot_be_delivered_are_counted_dropped(self):
        config = fraud_demo_config(
            self.dir.name,
            extra="log: {format: json, predictions: {rate: 1.0, topic: prediction-log}}\n"
                  "kafka: {properties: {message.timeout.ms: '1500'}}\n")
        server = Server("--brokers", self.broker.bootstrap, config=config)
        self.servers.append(server)

        def counts():
            m = server.request("GET", "/metrics")[1]
            return {o: int(re.search(rf'rtml_prediction_log_records_total\{{sink="kafka",'
                                     rf'outcome="{o}"\}} (\d+)', m).group(1))
                    for o in ("logged", "dropped")}

        for i in range(10):
            server.request("POST", "/predict", {"user_id": i, "amount": 5})
        wait_for(lambda: counts()["logged"] == 10 or None, 30, "10 records logged")
        self.broker.stop()  # the broker is gone: records cannot be delivered
        for i in range(5):  # scoring goes on: the log is best-effort
            self.assertEqual(server.request("POST", "/predict", {"user_id": i, "amount": 5})[0],
                             200)
        final = wait_for(lambda: (lambda c: c if c["dropped"] == 5 else None)(counts()), 30,
                         "5 records counted dropped")
        self.assertEqual(final, {"logged": 10, "dropped": 5})
        # librdkafka's own complaints come through the same JSON log, not raw stderr.
        wait_for(lambda: any('"component":"kafka"' in l for l in server.log), 30,
                 "librdkafka's log lines")
        lines = [json.loads(l) for l in list(server.log)]  # every line is one JSON object
        self.assertTrue([l for l in lines if l["component"] == "prediction-log"
                         and "dropped" in l["msg"]], lines)
        self.assertTrue([l for l in lines if l["component"] == "kafka"
                         and l["level"] in ("warning", "error")], lines)
        self.broker.stop = lambda: None  # already stopped

    def test_a_prediction_log_topic_without_brokers_is_a_config_error(self):
        config = fraud_demo_config(
            self.dir.name, extra="log: {predictions: {rate: 0.1, topic: prediction-log}}\n")
        r = subprocess.run([RTML, "serve", "--config", config, "--port", "0"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("log.predictions.topic needs Kafka: set kafka.brokers or --brokers",
                      r.stdout + r.stderr)

    def test_feature_view_follows_its_kafka_topic(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        config = fraud_demo_config(tmp.name, feature_topic="user-updates")
        server = Server("--brokers", self.broker.bootstrap, config=config)
        self.servers.append(server)
        record = {"user_id": 424242, "event_timestamp": "2099-01-01T00:00:00Z",
                  "avg_amount_30d": 77.0, "account_age_days": 5, "card_age_days": 5,
                  "user_age": 33, "credit_limit": 900.0, "utilization": 0.5,
                  "email_age_days": 9, "chargebacks_365d": 0, "home_country": "PT"}
        older = dict(record, event_timestamp="2098-01-01T00:00:00Z", avg_amount_30d=1.0)
        self.broker.produce("user-updates", [("424242", json.dumps(record)),
                                             ("424242", json.dumps(older)),
                                             ("bad", json.dumps({"user_id": "x"}))])

        def stored():
            status, resp, _ = server.request("POST", "/get-online-features", {
                "features": ["user_profile:avg_amount_30d"], "entities": {"user_id": [424242]}})
            return resp["results"][1]["values"][0] if resp["results"][1]["statuses"][0] == \
                "PRESENT" else None

        self.assertEqual(wait_for(stored, 60, "the streamed feature row"), 77.0)
        dlq = wait_for(lambda: [r for r in self.broker.read_all("ml-features-dlq",
                                                                "%k\t%s\t%h\n")
                                if r.startswith("bad\t")], 30, "the bad record's dead letter")
        self.assertIn("__connect.errors.topic=user-updates", dlq[0])
        self.assertIn("rtml.bad_feature_record", dlq[0])
        # The older record arrived later but did not overwrite the newer one.
        self.assertEqual(stored(), 77.0)

    def test_bench_kafka_measures_end_to_end(self):
        self.serve()
        r = subprocess.run([RTML, "bench", "kafka", "-b", self.broker.bootstrap, "-n", "300",
                            "--rate", "1000", "--timeout", "90", "--json"],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        result = json.loads(r.stdout)
        self.assertTrue(result["complete"], result)
        self.assertEqual(result["outputs"], 300)
        self.assertGreater(result["p50_ms"], 0)
        self.assertLessEqual(result["p50_ms"], result["p99_ms"])
        self.assertIn("100%", r.stderr)  # the progress bar
        # Against no scorer at all it says so instead of hanging.
        r = subprocess.run([RTML, "bench", "kafka", "-b", self.broker.bootstrap, "-n", "5",
                            "--topic", "predictions", "--predictions", "ml-features-dlq",
                            "--timeout", "2"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("is a scorer consuming", r.stderr)

    def test_a_group_of_replicas_loses_nothing_when_one_is_killed(self):
        stores = [tempfile.TemporaryDirectory() for _ in range(3)]
        try:
            # A short session, so that the group notices the killed member in
            # seconds rather than librdkafka's default 45 s.
            fast = "kafka: {properties: {session.timeout.ms: '6000', heartbeat.interval.ms: '500'}}\n"
            # Started together: the group forms once, not once per joiner.
            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                replicas = list(pool.map(lambda d: self.serve(store_dir=d.name, extra=fast), stores))
            n = 6000
            first, second = events(n // 2), events(n // 2, start=n // 2)
            self.broker.produce("ml-features", first)
            wait_for(lambda: len(self.outputs()[0]) >= n // 4, 90, "a quarter of the outputs")
            replicas[1].proc.send_signal(signal.SIGKILL)  # mid-stream, no goodbye
            replicas[1].proc.wait()
            self.broker.produce("ml-features", second)
            preds = wait_for(lambda: (lambda p: p if len({x["id"] for x in p}) >= n else None)(
                self.outputs()[0]), 120, "every id after the kill")
            ids = [p["id"] for p in preds]
            self.assertEqual(set(ids), set(range(n)))  # none lost
            duplicates = len(ids) - len(set(ids))
            print(f"\n{n} events, {len(ids)} predictions, {duplicates} duplicates after SIGKILL")
            survivors = [s for i, s in enumerate(replicas) if i != 1]
            handled = [int(s.request("GET", "/metrics")[1].split(
                'rtml_stream_events_total{topic="ml-features"} ')[1].split()[0]) for s in survivors]
            self.assertTrue(all(h > 0 for h in handled), handled)  # the group split the work
        finally:
            for d in stores:
                d.cleanup()


class DemoTest(unittest.TestCase):
    def test_demo_runs_the_pipeline_and_stops_cleanly_on_ctrl_c(self):
        with tempfile.TemporaryDirectory() as tmp:
            config = fraud_demo_config(tmp, users=50000)  # a profile for every generated user
            proc = subprocess.Popen([RTML, "demo", "--config", config, "--port", "0",
                                     "--broker-port", str(free_port()), "--rate", "500",
                                     "--log-level", "warn"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            lines, live = [], []
            port = None
            deadline = time.monotonic() + 60
            for line in proc.stdout:  # until 12 live lines with predictions flowing
                lines.append(line)
                port = port or re.search(r"http://127\.0\.0\.1:(\d+)", line)
                if line.startswith("[") and " 0/s" not in line.split("|")[1]:
                    live.append(line)
                if len(live) >= 12 or time.monotonic() > deadline:
                    break
            scoring_seen = bool(live)
            stats = None
            if port and live:
                with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}/v1/stats") as r:
                    stats = json.load(r)
            proc.send_signal(signal.SIGINT)
            rest, _ = proc.communicate(timeout=60)
            out = "".join(lines) + rest
            self.assertEqual(proc.returncode, 0, out)
            self.assertTrue(scoring_seen, out)
            self.assertIn("http://127.0.0.1:", out)
            self.assertRegex(out, r"end-to-end p50 [\d.]+ p95 [\d.]+ p99 [\d.]+ ms \| lag \d+ \| "
                                  r"drift PSI ([\d.]+|-)\n")
            # The generator's transactions are drawn like the training data: no
            # drift. (The window inputs start empty, so they and the prediction
            # do drift until the windows fill: README, quick start.)
            self.assertTrue(re.findall(r"drift PSI ([\d.]+)\n", out), out)
            windows = {"txn_count_1h", "txn_count_24h", "amount_sum_24h",
                       "seconds_since_last_txn", "prediction"}
            psi = {d["series"]: d["psi"] for d in stats["drift"]
                   if d["series"] not in windows and d["psi"] >= 0}
            self.assertEqual(len(psi), 26, stats["drift"])
            self.assertLess(max(psi.values()), 0.1, psi)
            self.assertRegex(out, r"done: \d+ events produced \(\d+ acknowledged\), \d+ scored, "
                                  r"[1-9]\d* predictions")
            # The live line and /v1/stats measure the same thing: per event, from
            # the poll that fetched it to its prediction's hand-off (the live
            # line over the last second, /v1/stats over 10 s).
            line_p50 = sorted(float(re.search(r"processing p50 ([\d.]+)", l).group(1))
                              for l in live[-5:])[2]
            stream = [s for s in stats["series"] if s["path"] == "stream"][0]["10s"]
            self.assertGreater(stream["count"], 0)
            ratio = stream["p50_ms"] / max(line_p50, 1e-3)
            self.assertTrue(1 / 3 < ratio < 3, (stream, line_p50))
            self.assertLess(stream["p50_ms"], 20)


if __name__ == "__main__":
    unittest.main(verbosity=2)
