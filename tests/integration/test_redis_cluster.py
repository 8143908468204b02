"""The Redis store on a real Redis Cluster: six Debian redis-server
processes (three masters, a replica each, `--cluster-enabled yes`) made
one cluster by `redis-cli --cluster create`, and `rtml serve` given them
as seeds (features.redis.cluster_nodes).

What must hold: feature pushes land on every master (keys spread by slot)
and every read answers each entity's own values, a batch of many entities
in one request; a replica taking over its master (CLUSTER FAILOVER, MOVED
for the old master's slots) and slots moving between masters
(`redis-cli --cluster reshard`, ASK while they migrate) while writes and
reads go on never serve a wrong value: every value read is its own
entity's, and never older than the last write acknowledged before the read
began (last-writer-wins); after a master is killed, its replica takes over
and reads succeed again. A seed list with no cluster behind it, a bad
seed, or a stream feature view on a cluster is a clear error at start.
"""
import os
import signal
import subprocess
import tempfile
import threading
import time
import unittest

from harness import REPO, RTML, Server, free_port, wait_for

MODELS = os.path.join(REPO, "tests", "testdata", "models")


def metric_sum(server, name):
    text = server.request("GET", "/metrics")[1]
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name))

DEFS = """project: clustered
entities:
  - {name: user, join_key: user_id, dtype: int64}
feature_views:
  - name: profile
    entities: [user]
    push_source: profile_push
    source: {path: data/profile.csv, timestamp_field: event_timestamp}
    features:
      - {name: owner, dtype: int64}
      - {name: version, dtype: int64}
feature_services:
  - {name: svc, features: [profile:owner, profile:version]}
"""
USERS = 600


class RedisCluster:
    """Three masters and three replicas on free loopback ports."""

    def __init__(self, dir):
        self.dir = dir
        self.ports = [free_port() for _ in range(6)]
        # The cluster bus on a port of its own (by default port + 10000,
        # which may not exist or be taken).
        self.bus = {p: free_port() for p in self.ports}
        self.procs = {}
        try:
            for p in self.ports:
                self.start(p)
        except Exception:
            self.stop()
            raise
        r = subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                            "--cluster-replicas", "1", "--cluster-yes"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("redis-cli --cluster create failed:\n" + r.stdout + r.stderr)
        wait_for(lambda: all("cluster_state:ok" in self.cli(p, "CLUSTER", "INFO") for p in self.ports),
                 30, "the cluster to be ok on every node")
        # A replica that never synced would not take over its master.
        wait_for(lambda: all("master_link_status:up" in self.cli(p, "INFO", "replication")
                             for _, p, role, _ in self.nodes() if role == "replica"),
                 30, "every replica to sync with its master")

    def start(self, port):
        self.procs[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-port", str(self.bus[port]),
             "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "1000",
             "--cluster-replica-validity-factor", "0",
             "--save", "", "--appendonly", "no", "--dir", self.dir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.cli(port, "PING").strip() == "PONG", 10, f"redis-server on {port}")

    def cli(self, port, *args):
        r = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                           timeout=30)
        return r.stdout

    def nodes(self):
        """[(id, port, role, master id)] from CLUSTER NODES, as a live node sees it."""
        for p in self.ports:
            if self.procs[p].poll() is None:
                out = []
                for line in self.cli(p, "CLUSTER", "NODES").splitlines():
                    f = line.split()
                    if len(f) < 8 or "fail" in f[2].split(","):
                        continue
                    port = int(f[1].split("@")[0].rsplit(":", 1)[1])
                    out.append((f[0], port, "master" if "master" in f[2] else "replica", f[3]))
                return out
        raise RuntimeError("no live node")

    def masters(self):
        return [(i, p) for i, p, role, _ in self.nodes() if role == "master"]

    def replica_of(self, master_id):
        return next(p for _, p, role, m in self.nodes() if role == "replica" and m == master_id)

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
                p.wait(10)


def scoring_models(dir):
    """A model repository with one model whose inputs owner and version come
    from the store (feature service svc), beside 4 inputs of its own."""
    version = os.path.join(dir, "models", "prof", "1")
    os.makedirs(version, exist_ok=True)
    with open(os.path.join(version, "model.yaml"), "w") as f:
        f.write("backend: native\nfeature_service: svc\noutput: {kind: probability}\n"
                f"file: {REPO}/tests/testdata/parity/xgb-debian/binary_logistic.json\n"
                "inputs:\n" + "".join(f"  - {{name: {n}, default: 0}}\n"
                                      for n in ("owner", "version", "a", "b", "c", "d")))
    return os.path.join(dir, "models")


def config(dir, seeds, extra="", models=MODELS):
    with open(os.path.join(dir, "features.yaml"), "w") as f:
        f.write(DEFS + extra)
    path = os.path.join(dir, "rtml.yaml")
    with open(path, "w") as f:
        f.write(f"models: {{repository: {models}}}\nfeatures:\n  definitions: features.yaml\n  store: redis\n"
                f"  redis: {{cluster_nodes: [{', '.join(seeds)}], timeout_ms: 300, retry_after_ms: 200}}\n")
    return path


class RedisClusterTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.cluster = RedisCluster(cls.dir.name)
        # Two seeds only: the rest of the cluster is found from them.
        cls.server = Server(config=config(cls.dir.name, [f"127.0.0.1:{p}" for p in cls.cluster.ports[:2]],
                                          models=scoring_models(cls.dir.name)), threads=1)
        cls.version = 0
        cls.lock = threading.Lock()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.cluster.stop()
        cls.dir.cleanup()

    def push(self, users, version):
        status, body, _ = self.server.request("POST", "/v1/features/push", {
            "push_source_name": "profile_push", "to": "online",
            "df": {"user_id": users, "event_timestamp": [time.time() + version * 1e-3] * len(users),
                   "owner": users, "version": [version] * len(users)}})
        return status, body

    def read(self, users):
        status, body, _ = self.server.request("POST", "/v1/features/get-online-features", {
            "features": ["profile:owner", "profile:version"], "entities": {"user_id": users}})
        return status, body

    def test_1_pushes_spread_over_every_master_and_read_back_by_entity(self):
        users = list(range(1, USERS + 1))
        status, body = self.push(users, 1)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["written"], USERS, body)
        for _, port in self.cluster.masters():
            self.assertGreater(int(self.cluster.cli(port, "DBSIZE")), USERS // 10, port)
        status, body = self.read(users)  # one request, every master
        self.assertEqual(status, 200, body)
        owners, versions = body["results"][1]["values"], body["results"][2]["values"]
        self.assertEqual(owners, users)
        self.assertEqual(versions, [1] * USERS)
        self.assertEqual(set(body["results"][1]["statuses"]), {"PRESENT"})
        status, body = self.read([USERS + 5])
        self.assertEqual(body["results"][1]["statuses"], ["NOT_FOUND"])

    def test_1b_predicts_read_each_entitys_features_through_the_cluster(self):
        """A predict's stored inputs come from the cluster without blocking
        the loop (a thread of its own reads, many predicts in one batch):
        each equals the same predict given its entity's stored values."""
        users = list(range(1, 81))
        answers, errors = {}, []

        def predict(batch):
            for u in batch:
                status, body, _ = self.server.request(
                    "POST", "/predict", {"features": {"user_id": u, "a": 1}})
                if status != 200:
                    errors.append((u, status, body))
                answers[u] = body
        threads = [threading.Thread(target=predict, args=(users[i::8],)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        for u in users:
            status, want, _ = self.server.request(
                "POST", "/predict", {"features": {"user_id": u, "a": 1, "owner": u, "version": 1}})
            self.assertEqual(status, 200, want)
            got = answers[u]
            self.assertEqual((got["feature_store"], got["feature_statuses"]), ("ok", {}), got)
            self.assertEqual(got["prediction"], want["prediction"], (u, got, want))
        self.assertGreater(metric_sum(self.server, "rtml_feature_store_reads_total"), 0)

    def under_load(self, change, check_versions=True):
        """Writers bump versions while readers check every value; runs `change` in between."""
        users = list(range(1, 201))
        acked = {"version": 1}
        errors, bad, reads = [], [], [0]
        stop = threading.Event()

        def writer():
            v = 100
            while not stop.is_set():
                v += 1
                status, body = self.push(users, v)
                if status == 200 and body.get("written", 0) + body.get("skipped_stale", 0) == len(users):
                    acked["version"] = v
                else:
                    errors.append((status, body))
                    time.sleep(0.05)

        def reader():
            while not stop.is_set():
                floor = acked["version"]
                status, body = self.read(users)
                if status != 200:
                    errors.append((status, body))
                    time.sleep(0.05)
                    continue
                owners, versions = body["results"][1]["values"], body["results"][2]["values"]
                statuses = body["results"][1]["statuses"]
                for u, o, v, s in zip(users, owners, versions, statuses):
                    if s != "PRESENT":
                        continue  # the store could not answer for it: a default, not a wrong value
                    if o != u or (check_versions and v < floor):
                        bad.append((u, o, v, floor))
                reads[0] += 1

        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            change()
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        return errors, bad, reads[0]

    def test_2_a_replica_taking_over_serves_no_wrong_value(self):
        master_id, master_port = self.cluster.masters()[0]
        replica = self.cluster.replica_of(master_id)

        def failover():
            self.assertIn("OK", self.cluster.cli(replica, "CLUSTER", "FAILOVER"))
            wait_for(lambda: any(p == replica for _, p in self.cluster.masters()), 30,
                     "the replica to become master")
        errors, bad, reads = self.under_load(failover)
        self.assertEqual(bad, [], "values from another entity, or older than an acknowledged write")
        self.assertGreater(reads, 3)
        # While the old master hands over (it pauses its clients), a read or
        # a write may time out: answered 503, named, never a wrong value.
        self.assertLessEqual(len(errors), 5, errors[:3])
        for status, body in errors:
            self.assertEqual((status, body["error"]["reason"]), (503, "feature_store_unavailable"), body)

    def test_3_slots_moving_between_masters_serve_no_wrong_value(self):
        (src_id, src_port), (dst_id, _) = self.cluster.masters()[:2]

        def reshard():
            r = subprocess.run(["redis-cli", "--cluster", "reshard", f"127.0.0.1:{src_port}",
                                "--cluster-from", src_id, "--cluster-to", dst_id,
                                "--cluster-slots", "1500", "--cluster-yes", "--cluster-pipeline", "10"],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr)
        errors, bad, reads = self.under_load(reshard)
        self.assertEqual(bad, [])
        self.assertGreater(reads, 3)
        self.assertEqual(errors[:3], [])

    def test_4_a_killed_master_is_replaced_and_reads_recover(self):
        master_id, master_port = self.cluster.masters()[-1]
        replica = self.cluster.replica_of(master_id)

        def kill():
            self.cluster.procs[master_port].send_signal(signal.SIGKILL)
            self.cluster.procs[master_port].wait()
            wait_for(lambda: any(p == replica for _, p in self.cluster.masters()), 30,
                     "the replica to take over the killed master")
        # Replication is asynchronous: a write acknowledged just before the
        # kill may be lost with the master (Redis's guarantee, not rtml's),
        # so only each value's entity is checked here.
        errors, bad, _ = self.under_load(kill, check_versions=False)
        self.assertEqual(bad, [])
        users = list(range(1, 201))
        last = {}

        def recovered():
            last["r"] = self.read(users)
            r = last["r"]
            return r if r[0] == 200 and set(r[1]["results"][1]["statuses"]) == {"PRESENT"} else None
        try:
            status, body = wait_for(recovered, 30, "reads to recover")
        except AssertionError:
            raise AssertionError(f"reads did not recover: {str(last.get('r'))[:600]}; {self.cluster.nodes()}")
        self.assertEqual(body["results"][1]["values"], users)

    def test_5_bad_seeds_and_stream_views_are_clear_errors(self):
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([RTML, "serve", "--config", config(d, ["127.0.0.1:notaport"])],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("cluster_nodes", r.stderr)
            stream = ("stream_feature_views:\n  - name: txn\n    entities: [user]\n"
                      "    source: {timestamp_field: t}\n"
                      "    aggregations: [{column: amount, function: count, windows: [1h], as: n}]\n")
            r = subprocess.run([RTML, "serve", "--config",
                                config(d, [f"127.0.0.1:{self.cluster.ports[0]}"], extra=stream)],
                               capture_output=True, text=True, timeout=30)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("Redis Cluster", r.stderr + r.stdout)
            # Seeds with nothing behind them: the server starts, reads say so.
            nobody = Server(config=config(d, [f"127.0.0.1:{free_port()}"]))
            try:
                status, body, _ = nobody.request("POST", "/v1/features/get-online-features", {
                    "features": ["profile:owner"], "entities": {"user_id": [1]}})
                self.assertEqual(status, 503, body)
                self.assertEqual(body["error"]["reason"], "feature_store_unavailable")
            finally:
                nobody.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
