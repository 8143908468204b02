"""rtml's container image (deploy/Dockerfile), built by `make image`
(scripts/image.sh, which `make test` runs before the tests), run for real
with Debian's podman on the host's network.

What must hold: the Dockerfile is lint-clean under hadolint but for the
exceptions deploy/.hadolint.yaml documents; the image runs rtml as a
numeric non-root user, exposes 8080, carries a HEALTHCHECK and rtml as its
entrypoint; a container from it, configured by environment over its
built-in config, answers /readyz, and answers POST /predict (one row and a
batch, and a bad request) exactly as the native binary does with the same
config; its HEALTHCHECK passes; SIGTERM drains it (/readyz 503 while
requests are still served) and it exits 0; a bad setting in the
environment stops it with a message naming the variable. And a replica of
deploy/compose.yaml (rtml-1: this image, its environment), its peers' names
pointed at a real redis-server and `rtml broker` on loopback, takes a
feature push into Redis, enriches a predict from it, and scores events from
the input topic onto the predictions topic.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import uuid

import yaml

from harness import FRAUD, REPO, Server, free_port, wait_for
from test_features import RedisServer
from test_stream import Broker, events

IMAGE = os.environ.get("RTML_IMAGE", "rtml:dev")
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
HADOLINT = os.path.join(REPO, ".venv", "bin", "hadolint")
REQUEST = json.load(open(os.path.join(FRAUD, "request.json")))
BATCH = {"instances": [REQUEST["features"], {"user_id": 7, "amount": 12.5, "distance_from_home_km": 3.0,
                                               "distance_from_last_txn_km": 1.0, "ip_risk": 0.05},
                       {"amount": 5000.0, "distance_from_home_km": 900.0,
                        "distance_from_last_txn_km": 800.0, "ip_risk": 0.9}]}
BAD = {"features": {"amount": "lots"}}


def podman(*args, timeout=60, check=True):
    r = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return r


def comparable(body):
    """An answer without what differs between two servers by nature: timings."""
    if isinstance(body, dict):
        return {k: comparable(v) for k, v in body.items() if not k.endswith("_us") and k != "latency_ms"}
    if isinstance(body, list):
        return [comparable(v) for v in body]
    return body


class Container:
    """A container of the image on the host network; removed on stop()."""

    def __init__(self, env, name=None, hosts=None):
        self.name = name or f"rtml-test-{uuid.uuid4().hex[:8]}"
        self.port = int(env["RTML_HTTP__PORT"])
        args = ["run", "-d", "--name", self.name, "--network", "host"]
        for host, address in (hosts or {}).items():
            args += ["--add-host", f"{host}:{address}"]
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        podman(*args, IMAGE)
        self.server = Server.__new__(Server)  # its request helpers, on the container's port
        self.server.port, self.server.ssl_context = self.port, None

    def request(self, *args, **kwargs):
        return self.server.request(*args, **kwargs)

    def ready(self):
        try:
            return self.request("GET", "/readyz")[0] == 200
        except OSError:
            return False

    def logs(self):
        r = podman("logs", self.name, check=False)
        return r.stdout + r.stderr

    def stop(self):
        podman("rm", "-f", "-t", "0", self.name, check=False)


@unittest.skipUnless(shutil.which("podman"), "podman is missing: run ./scripts/install-deps.sh")
class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if podman("image", "exists", IMAGE, check=False).returncode != 0:
            raise AssertionError(f"no image {IMAGE}: build it with `make image` (make test does)")
        cls.dir = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_hadolint_passes_with_the_documented_exceptions(self):
        self.assertTrue(os.path.exists(HADOLINT), "run ./scripts/install-venv.sh")
        r = subprocess.run([HADOLINT, "--config", os.path.join(REPO, "deploy", ".hadolint.yaml"),
                            os.path.join(REPO, "deploy", "Dockerfile")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Without the exceptions it does complain: the check is live.
        strict = subprocess.run([HADOLINT, "--no-fail", "-f", "json",
                                 os.path.join(REPO, "deploy", "Dockerfile")], capture_output=True, text=True)
        self.assertIn("DL3008", {x["code"] for x in json.loads(strict.stdout)})

    def test_image_runs_rtml_as_a_numeric_non_root_user_with_a_healthcheck(self):
        image = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
        config = image["Config"]
        self.assertEqual(config["User"], "10001:10001")
        self.assertIn("8080/tcp", config["ExposedPorts"])
        self.assertEqual(config["Entrypoint"], ["rtml"])
        self.assertEqual(config["Cmd"], ["serve"])
        self.assertIn("RTML_CONFIG=/etc/rtml/rtml.yaml", config["Env"])
        self.assertEqual(config["StopSignal"], "SIGTERM")
        # (podman shows a Docker-format image's HEALTHCHECK beside its Config)
        health = config.get("Healthcheck") or image.get("Healthcheck")
        self.assertEqual(health["Test"], ["CMD", "rtml", "probe"])

    def test_container_answers_as_the_native_binary_and_drains_on_sigterm(self):
        port = free_port()
        c = Container({"RTML_HTTP__PORT": str(port), "RTML_HTTP__THREADS": "1"})
        try:
            wait_for(c.ready, 30, "the container's /readyz")
            # The same config file and environment on the native binary (paths
            # where this checkout has them).
            native = Server(config=os.path.join(REPO, "deploy", "rtml.yaml"), env={
                "RTML_MODELS__REPOSITORY": os.path.join(FRAUD, "models"),
                "RTML_FEATURES__DEFINITIONS": os.path.join(FRAUD, "features.yaml"),
                "RTML_FEATURES__ROCKSDB__PATH": os.path.join(self.dir.name, "online")})
            try:
                for body in (REQUEST, BATCH, BAD):
                    got = c.request("POST", "/predict", body)
                    want = native.request("POST", "/predict", body)
                    self.assertEqual(got[0], want[0], got[1])
                    self.assertEqual(comparable(got[1]), comparable(want[1]))
                self.assertEqual(c.request("POST", "/predict", BAD)[0], 400)
                self.assertIsInstance(c.request("POST", "/predict", REQUEST)[1]["prediction"], float)
            finally:
                native.stop()
            self.assertEqual(podman("exec", c.name, "id", "-u").stdout.strip(), "10001")
            health = podman("healthcheck", "run", c.name, check=False)
            self.assertEqual(health.returncode, 0, health.stdout + health.stderr)
            # SIGTERM: not ready at once, still serving, then a clean exit.
            started = time.monotonic()
            podman("kill", "--signal", "TERM", c.name)
            wait_for(lambda: c.request("GET", "/readyz")[0] == 503, 5, "/readyz to turn 503")
            self.assertEqual(c.request("POST", "/predict", REQUEST)[0], 200)
            code = podman("wait", c.name, timeout=60).stdout.strip()
            self.assertEqual(code, "0", c.logs())
            self.assertLess(time.monotonic() - started, 20)  # drain_s 5 + in-flight work
            self.assertIn("draining", c.logs())
        finally:
            c.stop()

    def test_a_bad_setting_in_the_environment_stops_it_naming_the_variable(self):
        r = podman("run", "--rm", "--network", "host", "-e", "RTML_HTTP__PROT=1", IMAGE, check=False,
                   timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("RTML_HTTP__PROT", r.stdout + r.stderr)


@unittest.skipUnless(shutil.which("podman"), "podman is missing: run ./scripts/install-deps.sh")
class ComposeReplicaTest(unittest.TestCase):
    def test_a_compose_replica_serves_from_redis_and_scores_the_stream(self):
        if podman("image", "exists", IMAGE, check=False).returncode != 0:
            raise AssertionError(f"no image {IMAGE}: build it with `make image` (make test does)")
        with open(os.path.join(REPO, "deploy", "compose.yaml")) as f:
            service = yaml.safe_load(f)["services"]["rtml-1"]
        self.assertEqual(service["image"], IMAGE)
        redis, broker = RedisServer(), Broker(partitions=12)
        env = {k: str(v) for k, v in service["environment"].items()}
        # compose's fixed ports may be taken here: the peers' on free ones
        env.update({"RTML_ADMIN_TOKEN": "test-token", "RTML_HTTP__PORT": str(free_port()),
                    "RTML_FEATURES__REDIS__PORT": str(redis.port),
                    "RTML_KAFKA__BROKERS": f"kafka:{broker.port}"})
        c = Container(env, hosts={"redis": "127.0.0.1", "kafka": "127.0.0.1"})
        try:
            wait_for(c.ready, 30, "the replica's /readyz")
            now = int(time.time())
            push = c.request("POST", "/v1/features/push", {
                "push_source_name": "user_profile_push", "to": "online",
                "df": {"user_id": [9001], "event_timestamp": [now], "avg_amount_30d": [500.0],
                       "account_age_days": [3], "card_age_days": [3], "user_age": [22],
                       "credit_limit": [1000], "utilization": [0.9], "email_age_days": [2],
                       "chargebacks_365d": [1], "home_country": ["FR"]}},
                headers={"Authorization": "Bearer test-token"})
            self.assertEqual(push[0], 200, push[1])
            self.assertEqual(push[1]["written"], 1, push[1])
            self.assertGreater(int(redis.cli("DBSIZE").strip()), 0)  # in Redis, not in the container
            status, answer, _ = c.request("POST", "/predict", {"features": {**REQUEST["features"], "user_id": 9001}})
            self.assertEqual(status, 200, answer)
            self.assertEqual(answer["feature_store"], "ok")
            self.assertNotIn("avg_amount_30d", answer["feature_statuses"])  # found, not defaulted
            self.assertNotIn("avg_amount_30d", answer["defaulted"])
            n = 50
            broker.produce(env["RTML_KAFKA__INPUT_TOPIC"], events(n))
            out = wait_for(lambda: len(broker.read_all(env["RTML_KAFKA__OUTPUT_TOPIC"])) >= n and
                           broker.read_all(env["RTML_KAFKA__OUTPUT_TOPIC"]), 60, "the replica's predictions")
            self.assertEqual(len(out), n)
            podman("kill", "--signal", "TERM", c.name)
            self.assertEqual(podman("wait", c.name, timeout=60).stdout.strip(), "0", c.logs())
        finally:
            c.stop()
            broker.stop()
            redis.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
