"""Integration tests against a real Apache Kafka broker (KRaft): what the mock
cluster fakes. At-least-once loses nothing across a broker restart."""
import json
import os
import signal
import subprocess
import tempfile
import time
import unittest

import test_stream_features as sf
from harness import Server, fraud_demo_config, wait_for
from kafka_real import SASL_PASSWORD, RealKafka



class RealKafkaTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.kafka = RealKafka(self.dir.name)
        self.kafka.create_topics(["ml-features", "predictions", "ml-features-dlq"])
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        self.kafka.stop()
        self.dir.cleanup()

    def produce(self, start, n):
        data = "".join(f"{i % 500}\t" + json.dumps({"id": i, "user_id": i % 500, "amount": i % 300,
                                                     "event_time": time.time()})
                       + "\n" for i in range(start, start + n))
        subprocess.run(["kcat", "-b", self.kafka.bootstrap, "-P", "-t", "ml-features", "-K", "\t",
                        "-X", "enable.idempotence=true"], input=data, text=True, check=True,
                       timeout=120)

    def prediction_ids(self, isolation="read_uncommitted"):
        r = subprocess.run(["kcat", "-b", self.kafka.bootstrap, "-C", "-t", "predictions", "-e",
                            "-q", "-f", "%s\n", "-X", f"isolation.level={isolation}"],
                           capture_output=True, text=True, timeout=120)
        return [json.loads(line)["id"] for line in r.stdout.splitlines() if line]

    def test_at_least_once_loses_nothing_across_a_broker_restart(self):
        config = fraud_demo_config(self.dir.name + "/", store="memory")
        self.servers.append(Server("--brokers", self.kafka.bootstrap, config=config))
        n = 4000
        self.produce(0, n // 2)
        wait_for(lambda: len(self.prediction_ids()) >= n // 4, 90, "the first outputs")
        self.kafka.restart()  # the broker goes away mid-stream and comes back
        self.produce(n // 2, n // 2)
        ids = wait_for(lambda: (lambda got: got if len(set(got)) >= n else None)(
            self.prediction_ids()), 180, "every prediction after the restart")
        self.assertEqual(set(ids), set(range(n)))
        print(f"\n{n} events across a broker restart: {len(ids)} predictions, "
              f"{len(ids) - len(set(ids))} duplicates")


    def test_sasl_plaintext_logins_are_librdkafka_properties(self):
        """rtml reaches a broker that wants SASL/PLAIN through kafka.properties
        alone; a wrong password is an authentication error in the log, not a
        silent stall, and nothing is consumed."""
        def config(password, sub):
            return fraud_demo_config(
                self.dir.name + f"/{sub}/", store="memory",
                extra="kafka:\n  properties: {security.protocol: SASL_PLAINTEXT, "
                      f"sasl.mechanism: PLAIN, sasl.username: rtml, sasl.password: {password}}}\n")
        for sub in ("good", "bad"):
            os.makedirs(os.path.join(self.dir.name, sub, "data"), exist_ok=True)
        n = 300
        self.produce(0, n)
        bad = Server("--brokers", self.kafka.sasl_bootstrap, config=config("wrong", "bad"),
                     ready_path="/healthz")
        self.servers.append(bad)
        wait_for(lambda: any("uthentication failed" in line for line in bad.log), 60,
                 "an authentication error in the log")
        self.assertEqual(self.prediction_ids(), [])
        bad.stop()
        good = Server("--brokers", self.kafka.sasl_bootstrap,
                      config=config(SASL_PASSWORD, "good"), ready_path="/healthz")
        self.servers.append(good)
        ids = wait_for(lambda: (lambda got: got if len(set(got)) >= n else None)(
            self.prediction_ids()), 120, "every prediction over SASL")
        self.assertEqual(set(ids), set(range(n)))

    def test_exactly_once_survives_a_sigkill_of_the_worker(self):
        config = fraud_demo_config(self.dir.name + "/", store="memory",
                                   extra="kafka: {mode: exactly_once, transactional_id: rtml-eos, "
                                         "transaction_timeout_ms: 10000, max_batch: 200}\n")
        n = 6000
        self.produce(0, n)
        # /readyz waits for the stream views to catch up: this test kills mid-way.
        first = Server("--brokers", self.kafka.bootstrap, config=config, ready_path="/healthz")
        self.servers.append(first)
        wait_for(lambda: len(self.prediction_ids("read_committed")) >= n // 4, 120,
                 "a quarter of the committed predictions")
        first.proc.send_signal(signal.SIGKILL)  # mid-stream, possibly mid-transaction
        first.proc.wait()
        second = Server("--brokers", self.kafka.bootstrap, config=config,  # fences the first
                        ready_path="/healthz")
        self.servers.append(second)
        committed = wait_for(lambda: (lambda got: got if len(set(got)) >= n else None)(
            self.prediction_ids("read_committed")), 180, "every committed prediction")
        self.assertEqual(len(committed), n, "a read_committed reader saw a prediction twice")
        self.assertEqual(set(committed), set(range(n)))
        wait_for(lambda: second.request("GET", "/readyz")[0] == 200, 30,
                 "the restarted worker to have caught up")
        everything = self.prediction_ids("read_uncommitted")
        print(f"\n{n} events, SIGKILL mid-stream: read_committed sees {len(committed)} "
              f"predictions, read_uncommitted {len(everything)} (aborted duplicates included)")


class RealBroker:
    """The real broker behind the interface test_stream_features uses."""
    def __init__(self, workdir):
        self.kafka = RealKafka(workdir)
        self.kafka.create_topics(["ml-features", "predictions", "ml-features-dlq"], partitions=4)
        self.bootstrap = self.kafka.bootstrap

    def produce(self, topic, records):
        data = "".join(f"{k}\t{v}\n" for k, v in records)
        subprocess.run(["kcat", "-b", self.bootstrap, "-P", "-t", topic, "-K", "\t", "-X",
                        "enable.idempotence=true"], input=data, text=True, check=True, timeout=120)

    def read_all(self, topic, fmt="%k\t%s\n"):
        r = subprocess.run(["kcat", "-b", self.bootstrap, "-C", "-t", topic, "-e", "-q", "-f",
                            fmt], capture_output=True, text=True, timeout=120)
        return [line for line in r.stdout.split("\n") if line]

    def stop(self):
        self.kafka.stop()


class RealKafkaStreamFeaturesTest(sf.StreamFeaturesTest):
    """Stream feature views on the real broker: a SIGKILL of the worker
    mid-stream, then a restart: every aggregate equals the exact value."""
    test_bad_definitions_and_writes_are_refused_clearly = None  # no broker needed: run once

    def start_broker(self):
        return RealBroker(self.dir)


if __name__ == "__main__":
    unittest.main(verbosity=2)
