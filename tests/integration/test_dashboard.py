"""The live dashboard page, loaded in headless Chromium (Debian's chromium)
against a running `rtml demo`: its figures and charts fill with live numbers.
A screenshot is saved as a test artifact (build/test-artifacts/dashboard.png)."""
import os
import re
import subprocess
import tempfile
import unittest

from harness import REPO, RTML, fraud_demo_config, free_port

ARTIFACTS = os.environ.get("RTML_ARTIFACTS", os.path.join(REPO, "build", "test-artifacts"))
CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars"]


class DashboardTest(unittest.TestCase):
    def test_page_renders_live_numbers(self):
        with tempfile.TemporaryDirectory() as tmp:
            config = fraud_demo_config(tmp, store="memory")
            port = free_port()
            demo = subprocess.Popen([RTML, "demo", "--config", config, "--port", str(port),
                                     "--broker-port", str(free_port()), "--rate", "300",
                                     "--shift-after", "0.1",  # drifted traffic: an alert
                                     "--log-level", "warn"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                for line in demo.stdout:  # wait until events are being scored
                    if line.startswith("[") and " out      0/s" not in line:
                        break
                url = f"http://127.0.0.1:{port}/"
                chrome = CHROMIUM + [f"--user-data-dir={tmp}/chrome", "--virtual-time-budget=5000"]
                dom = subprocess.run(chrome + ["--dump-dom", url], capture_output=True,
                                     text=True, timeout=120).stdout
                os.makedirs(ARTIFACTS, exist_ok=True)
                shot = os.path.join(ARTIFACTS, "dashboard.png")
                subprocess.run(chrome + ["--window-size=1280,900", f"--screenshot={shot}", url],
                               capture_output=True, timeout=120)
            finally:
                demo.terminate()
                demo.communicate(timeout=60)
        updates = int(re.search(r'<body data-updates="(\d+)"', dom).group(1))
        self.assertGreaterEqual(updates, 2, "the page polled /v1/stats repeatedly")

        def figure(name):
            return re.search(rf'id="{name}"[^>]*>([^<]*)<', dom).group(1)

        self.assertGreater(float(figure("stream-rate")), 0)
        self.assertGreater(int(figure("events-in")), 0)
        self.assertGreater(float(figure("p99")), 0)
        self.assertEqual(figure("latency-path"), "stream")
        self.assertEqual(figure("latency-what"), "busiest path: poll → producer, per event")
        self.assertRegex(figure("lag"), r"^\d+$")
        self.assertIn("<td>fraud (default)</td><td>1 native READY</td><td>1</td>", dom)
        self.assertIn('<table id="shadow">', dom)
        self.assertEqual(figure("drift-status"), "alert")
        self.assertGreater(float(figure("drift-worst")), 0.25)
        self.assertRegex(figure("drift-worst-series"), r"^[a-z_0-9]+$")  # an input's name
        drift = re.search(r'id="drift-chart"[^>]*data-points="(\d+)"', dom)
        self.assertIsNotNone(drift, "the drift chart was drawn")
        points = re.search(r'id="throughput-chart"[^>]*data-points="(\d+)"', dom)
        self.assertIsNotNone(points, "the throughput chart was drawn")
        self.assertGreaterEqual(int(points.group(1)), 2)
        self.assertGreater(os.path.getsize(shot), 10000)


if __name__ == "__main__":
    unittest.main(verbosity=2)
