"""Scale-out: rtml replicas in one consumer group on the real Kafka broker
(an input topic of 12 partitions), sharing the Redis feature store, behind
nginx, while a replica joins and another leaves under steady stream and
HTTP load.

What must hold: the partitions are balanced at every step (2 replicas 6/6,
3 replicas 4/4/4, then 6/6 again: each partition held by exactly one
replica); every event produced is scored or dead-lettered, none lost, and
since the join and the leave are graceful (a replica that loses partitions
commits what it has done before it lets them go, and a draining one
finishes and commits its batch), none twice; each replica scores a share of
the events; every HTTP request through the balancer is answered 200; and a
predict answers the same on every replica (same model, same stored
features). The figures (events per replica, the pause each rebalance cost)
are printed for docs/scaling.md.
"""
import json
import os
import signal
import tempfile
import time
import unittest

from chaos import EventLoad, HttpLoad, Nginx
from harness import Server, fraud_demo_config, free_port, wait_for
from kafka_real import RealKafka
from test_features import RedisServer

PARTITIONS = 12
TOPIC = "ml-features"
EVENT_RATE, HTTP_RATE = 150, 60
STEP_S = 6  # of load between the changes


def comparable(body):
    return {k: v for k, v in body.items() if k not in ("latency_ms",)}


class ScaleOutTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        d = self.dir.name
        for sub in ("kafka", "rtml", "nginx"):
            os.makedirs(os.path.join(d, sub))
        self.kafka = RealKafka(os.path.join(d, "kafka"))
        self.kafka.create_topics([TOPIC], partitions=PARTITIONS,
                                 configs={"message.timestamp.type": "LogAppendTime"})
        self.kafka.create_topics(["predictions", TOPIC + "-dlq"], partitions=PARTITIONS)
        self.redis = RedisServer()
        self.config = fraud_demo_config(
            os.path.join(d, "rtml"), store="redis", redis_port=self.redis.port,
            extra="http: {drain_s: 1, shutdown_grace_s: 5}\nkafka: {group_id: scale-out}\n")
        self.ports = [free_port() for _ in range(3)]
        self.replicas = [None, None, None]
        self.nginx = None

    def tearDown(self):
        for r in self.replicas:
            if r is not None:
                r.stop()
        if self.nginx is not None:
            self.nginx.stop()
        self.redis.stop()
        self.kafka.stop()
        self.dir.cleanup()

    def start(self, i):
        self.replicas[i] = Server("--brokers", self.kafka.bootstrap, config=self.config,
                                  port=self.ports[i], threads=1, ready_path="/healthz")

    def held(self, r):
        """The input partitions replica r holds (its consumer-lag series)."""
        out = set()
        for line in r.request("GET", "/metrics")[1].splitlines():
            if line.startswith("rtml_stream_consumer_lag{") and f'topic="{TOPIC}"' in line:
                out.add(int(line.split('partition="')[1].split('"')[0]))
        return out

    def balanced(self, live):
        """The partitions split evenly over `live` (each held once), or None."""
        held = [self.held(self.replicas[i]) for i in live]
        every = sorted(p for h in held for p in h)
        if every != list(range(PARTITIONS)):
            return None
        sizes = sorted(len(h) for h in held)
        return held if sizes[-1] - sizes[0] <= 0 else None

    def events_of(self, r):
        for line in r.request("GET", "/metrics")[1].splitlines():
            if line.startswith("rtml_stream_events_total{"):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def outputs(self, topic):
        import subprocess
        r = subprocess.run(["kcat", "-b", self.kafka.bootstrap, "-C", "-t", topic, "-e", "-q",
                            "-f", "%s\n"], capture_output=True, text=True, timeout=120)
        return [json.loads(line) for line in r.stdout.splitlines() if line]

    def test_replicas_join_and_leave_under_load_losing_and_repeating_nothing(self):
        self.start(0)
        self.start(1)
        steps = {"2 replicas": wait_for(lambda: self.balanced([0, 1]), 60, "6/6 over two replicas")}
        self.nginx = Nginx(os.path.join(self.dir.name, "nginx"), self.ports)
        events = EventLoad(self.kafka.bootstrap, EVENT_RATE)
        http = HttpLoad(self.nginx.port, HTTP_RATE)
        pauses = {}
        try:
            time.sleep(STEP_S)  # steady load, then a replica joins
            t = time.monotonic()
            self.start(2)
            steps["join"] = wait_for(lambda: self.balanced([0, 1, 2]), 60, "4/4/4 after the join")
            pauses["join"] = round(time.monotonic() - t, 1)
            time.sleep(STEP_S)  # then one leaves (SIGTERM: drain, commit, exit 0)
            t = time.monotonic()
            leaving = self.replicas[0]
            shares = {"replica 0 (until it left)": self.events_of(leaving)}
            leaving.proc.send_signal(signal.SIGTERM)
            self.assertEqual(leaving.proc.wait(30), 0, "".join(leaving.log[-20:]))
            steps["leave"] = wait_for(lambda: self.balanced([1, 2]), 60, "6/6 after the leave")
            pauses["leave"] = round(time.monotonic() - t, 1)
            time.sleep(STEP_S)
        finally:
            events.stop()
            http.stop()
        # Every event out once: a prediction, or a dead letter for the bad ones.
        sent = set(events.sent) - events.failed
        self.assertFalse(events.failed, "the producer failed to send some events")

        def counted():
            got = self.outputs("predictions") + self.outputs(TOPIC + "-dlq")
            return got if {o["id"] for o in got} >= sent else None
        out = wait_for(counted, 90, "every event's prediction or dead letter")
        ids = [o["id"] for o in out]
        lost = sent - set(ids)
        repeated = len(ids) - len(set(ids))
        dead = {o["id"] for o in self.outputs(TOPIC + "-dlq")}
        self.assertEqual(lost, set())
        self.assertEqual(repeated, 0, "graceful joins and leaves repeat nothing")
        self.assertEqual(dead, events.bad & sent)
        for i in (1, 2):
            shares[f"replica {i}"] = self.events_of(self.replicas[i])
            self.assertGreater(shares[f"replica {i}"], 0)
        # HTTP through the balancer: every request answered, and 200.
        statuses = {}
        for r in http.records:
            statuses[r[2]] = statuses.get(r[2], 0) + 1
        self.assertEqual(set(statuses), {200}, statuses)
        # The same answer whichever replica serves.
        body = {"id": "same", "user_id": 42, "amount": 250.0, "hour_of_day": 2}
        answers = [comparable(self.replicas[i].request("POST", "/predict", body)[1]) for i in (1, 2)]
        self.assertEqual(answers[0], answers[1])
        self.assertEqual(answers[0]["feature_store"], "ok")
        print(json.dumps({"events": len(sent), "dead_letters": len(dead), "lost": len(lost),
                          "repeated": repeated, "http": statuses, "rebalance_s": pauses,
                          "events_by_replica": shares,
                          "partitions": {k: [sorted(h) for h in v] for k, v in steps.items()}}))


if __name__ == "__main__":
    unittest.main(verbosity=2)
