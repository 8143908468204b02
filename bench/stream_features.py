#!/usr/bin/python3
"""Stream feature views against Kafka Streams, on one real Apache Kafka broker
(KRaft, loopback) in the same run.

  /usr/bin/python3 bench/stream_features.py [--runs 3] [--events 50000]

Per run, on fresh topics of 6 partitions, each contender consumes the same
kind of events (the fraud demo's transactions, keyed by user_id, 5000 users,
produced by `rtml bench kafka`, which also times creation -> output):

- rtml with a stream feature view (a 1 h count and sum of "amount" per user
  on 1-minute tiles) feeding a small model: each event is scored on its
  user's windows, then added; state and offsets written atomically (RocksDB);
- rtml without the view (the same model, windows left at their defaults):
  what the view costs;
- Kafka Streams (bench/kstreams/WindowAgg.java, org.apache.kafka:kafka-streams
  at the broker's version): the same per-user 1 h count and sum on 1-minute
  tiles by event time, read before adding, in a persistent RocksDB store,
  one output per event. It does only the aggregation; rtml also parses the
  whole event, scores it and writes a prediction.

Each contender gets one stream thread. Prints medians as a Markdown table and
the ratios rtml / Kafka Streams. Needs java, javac and mvn (scripts/install-deps.sh)
and the broker (scripts/install-kafka.sh).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from kafka_real import RealKafka  # noqa: E402

RTML = os.environ.get("RTML_BIN", os.path.join(REPO, "build", "rtml"))
KS = os.path.join(REPO, "build", "kstreams")


def build_kstreams():
    for tool, package in (("java", "default-jre-headless"), ("javac", "openjdk-17-jdk-headless"),
                          ("mvn", "maven")):
        if shutil.which(tool) is None:
            sys.exit(f"stream_features: {tool} is missing (apt-get install {package})")
    lib = os.path.join(KS, "lib")
    if not os.path.exists(os.path.join(lib, "kafka-streams-4.1.1.jar")):
        print("fetching kafka-streams from Maven Central ...", file=sys.stderr)
        subprocess.run(["mvn", "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime",
                        f"-DoutputDirectory={lib}"], cwd=os.path.join(REPO, "bench", "kstreams"),
                       check=True)
    subprocess.run(["javac", "-cp", os.path.join(lib, "*"), "-d", os.path.join(KS, "classes"),
                    os.path.join(REPO, "bench", "kstreams", "WindowAgg.java")], check=True)


def write_rtml(work, name, views):
    d = os.path.join(work, name)
    os.makedirs(os.path.join(d, "models", "agg", "1"))
    inputs = ["amount_count_1h", "amount_sum_1h", "amount", "merchant_risk", "ip_risk", "utilization"]
    with open(os.path.join(d, "models", "agg", "1", "model.yaml"), "w") as f:
        f.write("backend: native\noutput: {kind: probability}\n"
                f"file: {REPO}/tests/testdata/parity/xgb-debian/binary_logistic.json\n"
                + ("feature_service: txn\n" if views else "") + "inputs:\n"
                + "".join(f"  - {{name: {i}, default: 0}}\n" for i in inputs))
    features = ""
    if views:
        with open(os.path.join(d, "features.yaml"), "w") as f:
            f.write("""project: bench
entities: [{name: user, join_key: user_id, dtype: int64}]
stream_feature_views:
  - name: user_txn
    entities: [user]
    source: {timestamp_field: event_time}
    allowed_lateness_s: 300
    aggregations:
      - {column: amount, function: count, windows: [1h], tile: 1m}
      - {column: amount, function: sum, windows: [1h], tile: 1m}
feature_services:
  - {name: txn, features: [user_txn]}
""")
        features = "features: {definitions: features.yaml, store: rocksdb, rocksdb: {path: online-RUN}}\n"
    return d, "models: {repository: models, default: agg}\n" + features + \
        "scoring: {unknown_features: ignore}\n"


def bench(bootstrap, topic, out, dlq, n, timeout=300, rate=0):
    r = subprocess.run([RTML, "bench", "kafka", "-b", bootstrap, "--topic", topic, "--predictions",
                        out, "--dead-letters", dlq, "-n", str(n), "--json", "--timeout",
                        str(timeout), "--rate", str(rate)], capture_output=True, text=True)
    line = [l for l in r.stdout.splitlines() if l.startswith("{")]
    if not line:
        raise RuntimeError(f"rtml bench kafka failed: {r.stdout}{r.stderr}")
    return json.loads(line[-1])


PACED_RATE, PACED_EVENTS = 2000, 10000


def measure(kafka, t, n):
    """Flat out (throughput), then paced at 2000/s (latency without a backlog)."""
    flat = bench(kafka.bootstrap, f"{t}-in", f"{t}-out", f"{t}-dlq", n)
    paced = bench(kafka.bootstrap, f"{t}-in", f"{t}-out", f"{t}-dlq", PACED_EVENTS,
                  rate=PACED_RATE)
    return {"events_per_s": flat["events_per_s"], "flat_p50_ms": flat["p50_ms"],
            "flat_p99_ms": flat["p99_ms"], "p50_ms": paced["p50_ms"], "p95_ms": paced["p95_ms"],
            "p99_ms": paced["p99_ms"]}


def run_rtml(kafka, base, run, label, n):
    t = f"{label}-{run}"
    kafka.create_topics([f"{t}-in", f"{t}-out", f"{t}-dlq"], partitions=6)
    d, text = base
    config = os.path.join(d, f"rtml-{run}.yaml")
    with open(config, "w") as f:
        f.write(text.replace("RUN", str(run)) +
                f"kafka: {{input_topic: {t}-in, output_topic: {t}-out, dead_letter_topic: {t}-dlq, "
                f"group_id: {t}}}\n")
    proc = subprocess.Popen([RTML, "serve", "--config", config, "--port", "0", "--brokers",
                             kafka.bootstrap, "--log-level", "warn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        bench(kafka.bootstrap, f"{t}-in", f"{t}-out", f"{t}-dlq", 200, timeout=90)  # joins the group
        return measure(kafka, t, n)
    finally:
        proc.terminate()
        proc.wait(30)


def run_kstreams(kafka, work, run, n):
    t = f"ks-{run}"
    kafka.create_topics([f"{t}-in", f"{t}-out", f"{t}-dlq"], partitions=6)
    state = os.path.join(work, f"ks-state-{run}")
    proc = subprocess.Popen(["java", "-Xmx512m", "-cp", f"{KS}/classes:{KS}/lib/*", "WindowAgg",
                             kafka.bootstrap, f"{t}-in", f"{t}-out", state, t],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if "RUNNING" in line:
                break
        bench(kafka.bootstrap, f"{t}-in", f"{t}-out", f"{t}-dlq", 200, timeout=90)
        return measure(kafka, t, n)
    finally:
        proc.terminate()
        proc.wait(30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--events", type=int, default=50000)
    args = ap.parse_args()
    build_kstreams()
    work = tempfile.mkdtemp(prefix="rtml-bench-aggs-")
    kafka = RealKafka(work)
    results = {"rtml + stream view": [], "rtml, no view": [], "Kafka Streams": []}
    try:
        with_views = write_rtml(work, "views", True)
        without = write_rtml(work, "plain", False)
        for r in range(1, args.runs + 1):
            # Alternate the order so neither contender always runs first.
            order = ["views", "plain", "ks"] if r % 2 else ["ks", "plain", "views"]
            for who in order:
                print(f"run {r}/{args.runs}: {who}, {args.events} events ...", file=sys.stderr)
                if who == "views":
                    results["rtml + stream view"].append(run_rtml(kafka, with_views, r, "views", args.events))
                elif who == "plain":
                    results["rtml, no view"].append(run_rtml(kafka, without, r, "plain", args.events))
                else:
                    results["Kafka Streams"].append(run_kstreams(kafka, work, r, args.events))
    finally:
        kafka.stop()
        shutil.rmtree(work, ignore_errors=True)
    fields = ("events_per_s", "flat_p50_ms", "flat_p99_ms", "p50_ms", "p95_ms", "p99_ms")
    med = {k: {f: statistics.median(x[f] for x in v) for f in fields} for k, v in results.items()}
    print(f"\n{args.runs} runs, medians; throughput flat out ({args.events} events), latency "
          f"(creation -> output) also at {PACED_RATE}/s ({PACED_EVENTS} events)\n")
    print(f"| | events/s | flat-out p50 / p99 ms | {PACED_RATE}/s p50 ms | p95 ms | p99 ms |\n"
          "|---|---|---|---|---|---|")
    for k, m in med.items():
        print(f"| {k} | {m['events_per_s']:.0f} | {m['flat_p50_ms']:.0f} / {m['flat_p99_ms']:.0f} | "
              f"{m['p50_ms']:.1f} | {m['p95_ms']:.1f} | {m['p99_ms']:.1f} |")
    v, ks, plain = med["rtml + stream view"], med["Kafka Streams"], med["rtml, no view"]
    print(f"\nrtml + view / Kafka Streams: {v['events_per_s'] / ks['events_per_s']:.2f}x events/s; "
          f"at {PACED_RATE}/s p50 {ks['p50_ms'] / v['p50_ms']:.1f}x lower, "
          f"p99 {ks['p99_ms'] / v['p99_ms']:.1f}x lower")
    print(f"the view costs rtml {100 * (1 - v['events_per_s'] / plain['events_per_s']):.0f}% of "
          "its events/s")

if __name__ == "__main__":
    main()
