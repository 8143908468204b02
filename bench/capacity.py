#!/usr/bin/python3
"""The per-core figures docs/scaling.md's capacity model rests on, measured
on one replica (`rtml serve --threads 1`) set up as a scaled-out one is: the
real Kafka broker (an input topic of 12 partitions), the Redis feature
store (the fraud demo's profiles materialized into it), nothing else.

    /usr/bin/python3 bench/capacity.py [--runs 3] [--events 60000] [--seconds 5]

Per run:
- stream: `rtml bench kafka -n EVENTS` flat out (the demo's events, keyed by
  user, profile lookups from Redis): events/s end to end, rtml's CPU per
  event (user + system time of the process, /proc), and what Redis saw:
  feature-store batch reads (one pipelined round trip each) and HMGETs per
  event;
- HTTP: wrk, single-row POST /predict of a known user (the demo's feature
  service: 8 profile features and the stream view's windows, from Redis), 8
  connections: requests/s, CPU per request, Redis round trips per request
  (the socket reads Redis processed).
Prints medians as a Markdown table and JSON.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import RTML, Server, fraud_demo_config  # noqa: E402
from kafka_real import RealKafka  # noqa: E402
from test_features import RedisServer  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / TICK


def metric(server, name, match=""):
    total = 0.0
    for line in server.request("GET", "/metrics")[1].splitlines():
        if line.startswith(name) and match in line and not line.startswith(name + "_"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def hmgets(redis):
    m = re.search(r"cmdstat_hmget:calls=(\d+)", redis.cli("INFO", "commandstats"))
    return int(m.group(1)) if m else 0


def redis_reads(redis):
    """How many reads from its clients' sockets Redis has processed: with a
    pipelining client, one per round trip."""
    m = re.search(r"total_reads_processed:(\d+)", redis.cli("INFO", "stats"))
    return int(m.group(1)) if m else 0


def stream_run(server, redis, bootstrap, events):
    before = (cpu_s(server.proc.pid), metric(server, "rtml_feature_store_reads_total", 'outcome="ok"'),
              hmgets(redis), metric(server, "rtml_stream_events_total"))
    r = subprocess.run([RTML, "bench", "kafka", "-b", bootstrap, "-n", str(events), "--json",
                        "--timeout", "300"], capture_output=True, text=True, timeout=400)
    if r.returncode != 0:
        raise RuntimeError("rtml bench kafka failed: " + r.stderr)
    result = json.loads(r.stdout.strip().splitlines()[-1])
    consumed = metric(server, "rtml_stream_events_total") - before[3]
    reads = metric(server, "rtml_feature_store_reads_total", 'outcome="ok"') - before[1]
    return {"events_per_s": result["events_per_s"],
            "cpu_us_per_event": 1e6 * (cpu_s(server.proc.pid) - before[0]) / consumed,
            "events_per_round_trip": consumed / max(1, reads),
            "hmget_per_event": (hmgets(redis) - before[2]) / consumed}


def http_run(server, redis, seconds, work):
    body = json.dumps({"user_id": 123, "amount": 912.4, "hour_of_day": 3})
    script = os.path.join(work, "post.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = {json.dumps(body)}\n")
    before = (cpu_s(server.proc.pid), redis_reads(redis),
              metric(server, "rtml_requests_total", 'outcome="ok"'))
    r = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}", "-s", script,
                        f"http://127.0.0.1:{server.port}/predict"], capture_output=True, text=True,
                       timeout=seconds + 60)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))
    served = metric(server, "rtml_requests_total", 'outcome="ok"') - before[2]
    # The loop shares round trips between the requests it has in hand: what
    # Redis read from its sockets, per request (the stream is idle meanwhile).
    reads = redis_reads(redis) - before[1]
    return {"req_per_s": rps, "cpu_us_per_req": 1e6 * (cpu_s(server.proc.pid) - before[0]) / served,
            "round_trips_per_req": reads / max(1, served)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--events", type=int, default=60000)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for sub in ("kafka", "rtml"):
            os.makedirs(os.path.join(d, sub))
        print("capacity: starting Kafka (12 partitions) and Redis ...", file=sys.stderr)
        kafka = RealKafka(os.path.join(d, "kafka"))
        redis = RedisServer()
        server = None
        try:
            kafka.create_topics(["ml-features"], partitions=12)
            kafka.create_topics(["predictions", "ml-features-dlq"], partitions=12)
            config = fraud_demo_config(os.path.join(d, "rtml"), store="redis", redis_port=redis.port,
                                       extra="kafka: {group_id: capacity}\n", users=40000)
            server = Server("--brokers", kafka.bootstrap, config=config, threads=1, ready_path="/healthz")
            runs = []
            for i in range(args.runs):
                print(f"capacity: run {i + 1}/{args.runs}: stream ({args.events} events), "
                      f"then HTTP ({args.seconds} s)", file=sys.stderr)
                runs.append({**stream_run(server, redis, kafka.bootstrap, args.events),
                             **http_run(server, redis, args.seconds, d)})
                print("  " + json.dumps(runs[-1]), file=sys.stderr)
        finally:
            if server:
                server.stop()
            redis.stop()
            kafka.stop()
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"One replica, 1 event loop, real Kafka (12 partitions) + Redis, medians of {args.runs} runs, "
          f"{os.cpu_count()} cores shared with the broker, Redis and the load generator:\n")
    print("| | per second | CPU per item | Redis |")
    print("|---|---:|---:|---|")
    print(f"| stream events (flat out) | {med['events_per_s']:,.0f} | {med['cpu_us_per_event']:.1f} µs | "
          f"{med['events_per_round_trip']:.0f} events per round trip, {med['hmget_per_event']:.2f} HMGET/event |")
    print(f"| HTTP single-row predicts (the demo feature service, from Redis) | {med['req_per_s']:,.0f} | "
          f"{med['cpu_us_per_req']:.1f} µs | {med['round_trips_per_req']:.2f} round trips/request |")
    print("\n" + json.dumps({"runs": runs, "median": med}))


if __name__ == "__main__":
    main()
