"""Starts and stops a real `rtml serve` for integration tests.

The server listens on a free loopback port (port 0; the port is read from its
"serving on" log line) and is ready when GET /readyz answers 200. Nothing here
sleeps blindly: every wait polls for the condition with a deadline.
"""
import http.client
import json
import os
import re
import subprocess
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RTML = os.environ.get("RTML_BIN", os.path.join(REPO, "build", "rtml"))


FRAUD = os.path.join(REPO, "examples", "fraud")


def free_port():
    """A loopback TCP port that was free a moment ago."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout_s, what, poll_s=0.2):
    """Polls `predicate` every poll_s until it returns something truthy; fails after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError("timed out waiting for " + what)


def run_rtml(*args, check=True, timeout=60):
    r = subprocess.run([RTML, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"rtml {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def fraud_demo_config(tmpdir, store="rocksdb", redis_port=None, extra="", feature_topic=None,
                      users=500):
    """A copy of the fraud demo's config whose feature data and RocksDB store
    live in tmpdir, with user profiles generated, applied and materialized.
    With feature_topic, the user_profile view also follows that Kafka topic."""
    with open(os.path.join(FRAUD, "features.yaml")) as f:
        feats = f.read()
    if feature_topic:
        feats = feats.replace("timestamp_field: event_timestamp",
                              f"timestamp_field: event_timestamp\n      kafka_topic: {feature_topic}")
    with open(os.path.join(tmpdir, "features.yaml"), "w") as f:
        f.write(feats)
    subprocess.run(["/usr/bin/python3", os.path.join(FRAUD, "make_features.py"), "--users", str(users),
                    "--out", os.path.join(tmpdir, "data", "user_profile.csv")],
                   check=True, capture_output=True)
    # The user_txn stream view's events file (what `features historical` replays).
    subprocess.run(["/usr/bin/python3", "-c",
                    "import json, sys; sys.path.insert(0, sys.argv[1]); import transactions; "
                    "open(sys.argv[2], 'w').write(''.join(json.dumps(e) + '\\n' for e in "
                    "transactions.history(users=int(sys.argv[3]), minutes=10)))",
                    FRAUD, os.path.join(tmpdir, "data", "transactions.jsonl"), str(min(users, 500))],
                   check=True, capture_output=True)
    redis = f"  redis: {{port: {redis_port}, timeout_ms: 200, retry_after_ms: 300}}\n" \
        if redis_port else ""
    config = os.path.join(tmpdir, "rtml.yaml")
    with open(config, "w") as f:
        f.write(f"models: {{repository: {os.path.join(FRAUD, 'models')}, default: fraud}}\n"
                f"features:\n  definitions: features.yaml\n  store: {store}\n"
                f"  rocksdb: {{path: online}}\n{redis}{extra}")
    run_rtml("features", "apply", "--config", config)
    run_rtml("features", "materialize-incremental", "--config", config)
    return config


class Server:
    def __init__(self, *args, config=None, ready_timeout_s=30, env=None, ready_path="/readyz",
                 threads=2, ssl_context=None, port=0):
        self.ssl_context = ssl_context  # HTTPS when set (a server with http.tls)
        cmd = [RTML, "serve", "--port", str(port), "--threads", str(threads)]
        if config:
            cmd += ["--config", config]
        cmd += list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env={**os.environ, **(env or {})})
        self.log = []
        self.port = None
        self.grpc_port = None  # with --grpc-port: the V2 gRPC service's
        found = threading.Event()

        def pump():
            for line in self.proc.stdout:
                self.log.append(line)
                g = re.search(r"over gRPC on [\d.]+:(\d+)", line)
                if g:
                    self.grpc_port = int(g.group(1))
                m = re.search(r"serving on https?://[\d.]+:(\d+)", line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                    found.set()
            found.set()

        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(ready_timeout_s) or self.port is None:
            self.stop()
            raise RuntimeError("rtml did not start:\n" + "".join(self.log))
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            try:
                if self.request("GET", ready_path)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError("rtml never became ready:\n" + "".join(self.log))

    def connection(self):
        if self.ssl_context is not None:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                               context=self.ssl_context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def request(self, method, path, body=None, headers=None, conn=None):
        """Returns (status, parsed JSON or text, headers)."""
        own = conn is None
        conn = conn or self.connection()
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            hdrs = {"Content-Type": "application/json"} if body is not None else {}
            hdrs.update(headers or {})
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read().decode()
            ctype = resp.getheader("Content-Type", "")
            parsed = json.loads(data) if ctype.startswith("application/json") else data
            return resp.status, parsed, dict(resp.getheaders())
        finally:
            if own:
                conn.close()

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode
