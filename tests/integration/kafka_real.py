"""A real Apache Kafka broker (KRaft, single node, loopback, small heap) for
the tests that need what librdkafka's mock cannot show: durability across a
restart, transactions, read_committed. scripts/install-kafka.sh fetches it."""
import glob
import os
import signal
import socket
import subprocess
import time

from kafka.admin import KafkaAdminClient, NewTopic

from harness import free_port

PINNED = "4.1.1"
SASL_PASSWORD = "rtml-test-secret"
HOME = os.environ.get("RTML_KAFKA_HOME",
                      os.path.expanduser(f"~/.cache/rtml/kafka-{PINNED}"))



class RealKafka:
    def __init__(self, workdir):
        if not glob.glob(os.path.join(HOME, "lib", "kafka_2.13-*.jar")):
            raise RuntimeError(f"no Kafka in {HOME}: run scripts/install-kafka.sh")
        self.dir = workdir
        self.port, self.controller, self.sasl_port = free_port(), free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        # A second listener that takes SASL/PLAIN logins (user rtml, password SASL_PASSWORD).
        self.sasl_bootstrap = f"127.0.0.1:{self.sasl_port}"
        self.props = os.path.join(workdir, "server.properties")
        with open(self.props, "w") as f:
            f.write(f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{self.controller}
listeners=PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:{self.sasl_port},CONTROLLER://127.0.0.1:{self.controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{self.port},SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_rtml="{SASL_PASSWORD}";
log.dirs={os.path.join(workdir, "data")}
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=3
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
""")
        classpath = os.path.join(HOME, "lib", "*")
        self.java = ["java", "-Xmx512m", "-Xms128m", "-XX:+UseSerialGC", "-cp", classpath]
        cluster = subprocess.run(self.java + ["kafka.tools.StorageTool", "random-uuid"],
                                 capture_output=True, text=True, check=True).stdout.split()[-1]
        subprocess.run(self.java + ["kafka.tools.StorageTool", "format", "-t", cluster, "-c",
                                    self.props], capture_output=True, check=True)
        self.start()

    def start(self, timeout_s=60):
        self.log = open(os.path.join(self.dir, "broker.log"), "ab")
        self.proc = subprocess.Popen(self.java + ["kafka.Kafka", self.props], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("Kafka exited; see " + os.path.join(self.dir, "broker.log"))
            r = subprocess.run(["kcat", "-b", self.bootstrap, "-L", "-m", "2"],
                               capture_output=True, text=True)
            if r.returncode == 0 and "1 brokers" in r.stdout:
                return
            time.sleep(0.2)
        raise RuntimeError("Kafka did not become ready")

    def create_topics(self, names, partitions=3, configs=None):
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics([NewTopic(n, partitions, 1, topic_configs=configs or {})
                                 for n in names])
        finally:
            admin.close()

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def restart(self):
        self.stop()
        self.start()
