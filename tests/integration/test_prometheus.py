"""A real Prometheus server (Debian's `prometheus`) on a free loopback port
scrapes a real rtml, and rtml's metrics come back through Prometheus's query
API after load; the shipped alert rules load and evaluate."""
import json
import os
import subprocess
import tempfile
import threading
import unittest
import urllib.parse
import urllib.request

from harness import REPO, Server, fraud_demo_config, free_port, wait_for

RULES = os.path.join(REPO, "deploy", "prometheus", "rtml-alerts.yml")


class PrometheusTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.server = Server(config=fraud_demo_config(self.dir.name))
        self.port = free_port()
        config = os.path.join(self.dir.name, "prometheus.yml")
        with open(config, "w") as f:
            f.write(f"global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n"
                    f"rule_files: [{RULES}]\n"
                    f"scrape_configs:\n  - job_name: rtml\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{self.server.port}']\n")
        self.prom = subprocess.Popen(
            ["prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={os.path.join(self.dir.name, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ready, 60, "Prometheus to be ready")
        self.stop_load = threading.Event()

    def tearDown(self):
        self.stop_load.set()
        self.prom.terminate()
        self.prom.wait(30)
        self.server.stop()
        self.dir.cleanup()

    def ready(self):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, promql):
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?" +
               urllib.parse.urlencode({"query": promql}))
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.load(r)
        self.assertEqual(body["status"], "success", body)
        return body["data"]["result"]

    def load(self):
        body = {"user_id": 7, "amount": 90.5, "hour_of_day": 3}
        conn = self.server.connection()
        while not self.stop_load.is_set():
            self.server.request("POST", "/predict", body, conn=conn)
            self.server.request("POST", "/predict", {"amount": "bad"}, conn=conn)
        conn.close()

    def test_metrics_come_back_through_promql(self):
        threading.Thread(target=self.load, daemon=True).start()
        up = wait_for(lambda: self.query('up{job="rtml"}'), 30, "a scrape")
        self.assertEqual(up[0]["value"][1], "1")
        total = wait_for(lambda: (lambda r: r if r and float(r[0]["value"][1]) > 100 else None)(
            self.query("sum(rtml_requests_total)")), 60, "requests counted")
        self.assertGreater(float(total[0]["value"][1]), 100)
        p99 = wait_for(lambda: [x for x in self.query(
            'histogram_quantile(0.99, sum by (le) (rate(rtml_request_duration_seconds_bucket[10s])))')
            if x["value"][1] not in ("NaN", "+Inf")], 60, "a p99 from the histogram")
        self.assertGreater(float(p99[0]["value"][1]), 0)
        self.assertLess(float(p99[0]["value"][1]), 1.0)
        errors = self.query('sum by (reason) (rate(rtml_request_errors_total[10s]))')
        self.assertIn("wrong_type", [e["metric"].get("reason") for e in errors])
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/rules") as r:
            rules = json.load(r)["data"]["groups"][0]["rules"]
        self.assertEqual({r["health"] for r in rules}, {"ok"}, rules)
        names = {r["name"] for r in rules}
        self.assertIn("RtmlHighErrorRate", names)
        # Every query of the shipped Grafana dashboard is valid PromQL here, and
        # the main panels have data after this load.
        with open(os.path.join(REPO, "deploy", "grafana", "rtml-dashboard.json")) as f:
            panels = json.load(f)["panels"]
        answered = {}
        for panel in panels:
            for target in panel.get("targets", []):
                answered[target["expr"]] = self.query(target["expr"])  # asserts success
        throughput = answered["sum by (model, path) (rate(rtml_predictions_total[1m]))"]
        self.assertIn(("fraud", "http"), [(r["metric"]["model"], r["metric"]["path"])
                                         for r in throughput])
        self.assertTrue(answered["topk(8, rtml_drift_psi)"], "drift series")


if __name__ == "__main__":
    unittest.main(verbosity=2)
