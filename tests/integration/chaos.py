"""The chaos suite's engine: a real Kafka broker (KRaft), a real Redis (the
feature store, with its append-only file, behind a TCP proxy that can slow
it) and three `rtml serve` replicas in one consumer group behind nginx (an
upstream with passive health checks: a replica that fails a request is left
out for fail_timeout, and the request is retried on the next one). Under
steady HTTP and stream load it injects, one after the other: a replica
SIGKILLed and restarted, the broker restarted, Redis killed and restarted,
Redis slowed, a replica SIGTERMed (drain) and restarted. Then it counts, by
id, every event produced and every prediction or dead letter out, and every
HTTP request's status, and measures how long each fault took to recover
from.

Used by tests/integration/test_chaos.py (short, in CI) and bench/chaos.sh
(longer: more load, longer gaps, several rounds). Run alone:

    python3 tests/integration/chaos.py [--rounds 1] [--http-rate 100] [--event-rate 100]
                                       [--hold 2] [--gap 12] [--json out.json]
"""
import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from harness import Server, fraud_demo_config, free_port, wait_for
from kafka_real import RealKafka
from tcp_proxy import TcpProxy

PARTITIONS = 6
REPLICAS = 3
DRAIN_S, GRACE_S = 1.0, 5.0
LATE_S = 1.0  # a prediction later than this after its event is "not recovered"
# What a client may see while a fault lasts (docs/operations.md, "Chaos"):
# 502/504 from nginx when no replica could answer in time, 503 from rtml
# (queue_wait / feature_store_unavailable) when it sheds or cannot read.
DOCUMENTED_ERRORS = {502, 503, 504}


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class PersistentRedis:
    """redis-server with its append-only file in `dir`, so a kill and restart
    keeps the feature data (as a production Redis would)."""

    def __init__(self, dir):
        self.dir, self.port = dir, free_port()
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
             "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(["redis-cli", "-p", str(self.port), "PING"],
                                        capture_output=True, text=True).stdout.strip() == "PONG",
                 30, "redis-server", poll_s=0.05)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Nginx:
    """nginx in front of the replicas: round robin, max_fails=1 fail_timeout=2s
    (passive health checks), failed or refused requests retried on the next
    replica (POSTs too: a prediction is safe to repeat)."""

    def __init__(self, dir, upstream_ports):
        self.dir, self.port = dir, free_port()
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(dir, d), exist_ok=True)
        servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n"
                          for p in upstream_ports)
        conf = os.path.join(dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(("user root;\n" if os.geteuid() == 0 else "") + f"""
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi; uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
  upstream rtml {{
{servers}    keepalive 32;
  }}
  server {{
    listen 127.0.0.1:{self.port};
    location / {{
      proxy_pass http://rtml;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 3;
      proxy_connect_timeout 1s;
      proxy_read_timeout 5s;
    }}
  }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", dir, "-c", conf, "-e", f"{dir}/error.log"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for(self.ready, 30, "nginx")

    def ready(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("GET", "/healthz")
            return c.getresponse().status == 200
        except OSError:
            return False

    def upstream_failures(self):
        """Requests nginx had to send to another replica (its error log)."""
        with open(os.path.join(self.dir, "error.log")) as f:
            return sum(1 for line in f if "upstream" in line)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class HttpLoad:
    """Threads sending single-row predicts through nginx at a steady total
    rate, each recording (sent, done, status, reason, degraded)."""

    def __init__(self, port, rate, threads=4):
        self.port, self.period = port, threads / rate
        self.records, self.lock = [], threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self, k):
        conn, n, next_at = None, 0, time.monotonic()
        while not self.stopping.is_set():
            next_at += self.period
            body = json.dumps({"id": f"h{k}-{n}", "user_id": 1 + (n * 7 + k) % 500,
                               "amount": 5 + n % 300})
            n += 1
            sent = time.time()
            status, reason, degraded = 0, "connection", False
            try:
                conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                try:
                    parsed = json.loads(data)
                    reason = parsed.get("error", {}).get("reason", "") if status != 200 else ""
                    degraded = parsed.get("feature_store") == "degraded"
                except ValueError:
                    reason = "not_json"
            except (OSError, http.client.HTTPException):
                conn = None
            with self.lock:
                self.records.append((sent, time.time(), status, reason, degraded))
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()
        if conn is not None:
            conn.close()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(15)


class EventLoad:
    """Produces fraud events at a steady rate (kafka-python, acks=all,
    retrying through the broker's restart), keyed by user_id; one in 40 has a
    string amount (a dead letter, wrong_type). Each carries its id and send
    time. What reached the topic is read back at the end (Cluster.inputs)."""

    def __init__(self, bootstrap, rate):
        from kafka import KafkaProducer
        self.period, self.sent, self.bad, self.failed = 1 / rate, {}, set(), set()
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", retries=1_000_000, linger_ms=5,
            max_in_flight_requests_per_connection=1, request_timeout_ms=30000,
            retry_backoff_ms=200, max_block_ms=120_000)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        i, next_at = 0, time.monotonic()
        while not self.stopping.is_set():
            next_at += self.period
            now = time.time()
            user = 1 + i % 500
            bad = i % 40 == 39
            if bad:
                self.bad.add(i)
            value = json.dumps({"id": i, "user_id": user, "amount": "ten" if bad else 5 + i % 300,
                                "event_time": now}).encode()
            self.sent[i] = now
            self.producer.send("ml-features", key=str(user).encode(), value=value).add_errback(
                lambda _e, i=i: self.failed.add(i))
            i += 1
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()

    def stop(self):
        self.stopping.set()
        self.thread.join(130)
        self.producer.flush(180)
        self.producer.close(10)


class Cluster:
    def __init__(self, dir, log_to=None):
        self.dir = dir
        self.kafka = RealKafka(self._sub("kafka"))
        # The broker stamps each event as it appends it: the stream's delay
        # is measured from there, apart from the producer's own.
        self.kafka.create_topics(["ml-features"], partitions=PARTITIONS,
                                 configs={"message.timestamp.type": "LogAppendTime"})
        self.kafka.create_topics(["predictions", "ml-features-dlq"])
        self.redis = PersistentRedis(self._sub("redis"))
        self.proxy = TcpProxy(self.redis.port)
        self.config = fraud_demo_config(
            self._sub("rtml") + "/", store="redis", redis_port=self.proxy.port,
            extra=f"http: {{drain_s: {DRAIN_S}, shutdown_grace_s: {GRACE_S}}}\n"
                  "kafka: {group_id: chaos}\n")
        self.ports = [free_port() for _ in range(REPLICAS)]
        self.replicas = [None] * REPLICAS
        for i in range(REPLICAS):
            self.start_replica(i)
        self.nginx = Nginx(self._sub("nginx"), self.ports)

    def _sub(self, name):
        path = os.path.join(self.dir, name)
        os.makedirs(path, exist_ok=True)
        return path

    def start_replica(self, i):
        # /healthz: /readyz waits for the stream views to catch up, which a
        # replica joining a group under load may take a while to do.
        self.replicas[i] = Server("--brokers", self.kafka.bootstrap, config=self.config,
                                  port=self.ports[i], threads=1, ready_path="/healthz")

    def stop(self):
        for r in self.replicas:
            if r is not None:
                r.stop()
        for part in ("nginx", "proxy", "redis", "kafka"):
            obj = getattr(self, part, None)
            if obj is not None:
                (obj.close if part == "proxy" else obj.stop)()

    def scrape(self, name):
        """{label set: value} of metric `name`, summed over the live replicas."""
        out = {}
        for r in self.replicas:
            if r is None or not r.alive():
                continue
            for line in r.request("GET", "/metrics")[1].splitlines():
                if line.startswith(name + "{"):
                    labels, value = line[len(name):].rsplit(" ", 1)
                    out[labels] = out.get(labels, 0) + float(value)
        return out

    def inputs(self):
        """{event id: (times it is on the input topic, when the broker first
        appended it, its partition)}."""
        n = {}
        for ts, p, _, part in self.outputs("ml-features"):
            count, at, _ = n.get(p["id"], (0, ts, part))
            n[p["id"]] = (count + 1, min(at, ts), part)
        return n

    def outputs(self, topic):
        """[(kafka timestamp s, payload dict, headers, partition)] of a topic,
        from the start."""
        r = subprocess.run(["kcat", "-b", self.kafka.bootstrap, "-C", "-t", topic, "-e", "-q",
                            "-f", "%T\t%p\t%h\t%s\n"], capture_output=True, text=True,
                           timeout=120)
        out = []
        for line in r.stdout.splitlines():
            ts, part, headers, payload = line.split("\t", 3)
            out.append((int(ts) / 1000, json.loads(payload), headers, int(part)))
        return out


def faults(c):
    """(name, inject, repair) of each fault, in the order they are played."""
    state = {}

    def sigkill():
        r = c.replicas[0]
        r.proc.send_signal(signal.SIGKILL)
        r.proc.wait()
        r.stop()

    def sigterm():
        r = c.replicas[1]
        t = time.monotonic()
        r.proc.send_signal(signal.SIGTERM)
        try:
            state["drain_exit"] = r.proc.wait(DRAIN_S + GRACE_S + 10)
        except subprocess.TimeoutExpired:
            state["drain_exit"] = None
        state["drain_s"] = time.monotonic() - t
        r.stop()

    def slow():
        c.proxy.delay_s = 0.02

    def fast():
        c.proxy.delay_s = 0.0

    return state, [
        ("replica SIGKILL + restart", sigkill, lambda: c.start_replica(0)),
        ("broker restart", lambda: c.kafka.stop(), lambda: c.kafka.start()),
        ("Redis killed + restarted", c.redis.kill, c.redis.start),
        ("Redis slowed (+20 ms per reply)", slow, fast),
        ("replica SIGTERM (drain) + restart", sigterm, lambda: c.start_replica(1)),
    ]


def run(dir, rounds=1, http_rate=100, event_rate=100, hold_s=2.0, gap_s=12.0):
    c = Cluster(dir)
    try:
        log(f"cluster up: broker {c.kafka.bootstrap}, Redis via proxy {c.proxy.port}, "
            f"replicas {c.ports}, nginx {c.nginx.port}")
        httpload = HttpLoad(c.nginx.port, http_rate)
        events = EventLoad(c.kafka.bootstrap, event_rate)
        time.sleep(gap_s / 2)
        drain, plan = faults(c)
        phases = []
        for r in range(rounds):
            for name, inject, repair in plan:
                log(f"round {r + 1}: {name}")
                p = {"fault": name, "injected": time.time()}
                inject()
                time.sleep(hold_s)
                p["repairing"] = time.time()
                repair()
                p["repaired"] = time.time()
                if "drain_exit" in drain:
                    p["drain_exit"], p["drain_s"] = drain.pop("drain_exit"), drain.pop("drain_s")
                phases.append(p)
                time.sleep(gap_s)
        log("stopping the load")
        httpload.stop()
        events.stop()
        retries = c.scrape("rtml_retries_total")
        upstream_failures = c.nginx.upstream_failures()
        inputs = c.inputs()  # what Kafka holds: the events that went in
        valid = set(inputs) - events.bad

        def collected():
            preds, dlq = c.outputs("predictions"), c.outputs("ml-features-dlq")
            seen = {p["id"] for _, p, _, _ in preds + dlq}
            return (preds, dlq) if set(inputs) <= seen else None
        try:
            preds, dlq = wait_for(collected, 180, "every event's prediction or dead letter",
                                  poll_s=2)
        except AssertionError:
            preds, dlq = c.outputs("predictions"), c.outputs("ml-features-dlq")
        res = report(phases, httpload.records, events, inputs, valid, preds, dlq)
        res["retries"], res["nginx_upstream_failures"] = retries, upstream_failures
        return res
    finally:
        c.stop()


def report(phases, records, events, inputs, valid, preds, dlq):
    out_at = {}  # event id -> first output time
    counts = {}
    for ts, p, _, _ in preds + dlq:
        counts[p["id"]] = counts.get(p["id"], 0) + 1
        out_at[p["id"]] = min(ts, out_at.get(p["id"], ts))
    predicted = {p["id"] for _, p, _, _ in preds}
    def reason(headers):
        for h in headers.split(","):
            if h.startswith("__connect.errors.exception.class.name=rtml."):
                return h.split("rtml.", 1)[1]
        return "?"
    dead = {p["id"]: reason(h) for _, p, h, _ in dlq}
    ins = set(inputs)
    res = {
        "events": len(ins), "produce_failed": len(events.failed),
        "input_duplicates": sum(n - 1 for n, _, _ in inputs.values()),
        "valid": len(valid), "bad": len(events.bad & ins),
        "predicted": len(predicted), "dead_letters": len(dead),
        "lost": sorted(ins - set(out_at))[:20],
        "lost_count": len(ins - set(out_at)),
        "valid_dead_lettered": len(valid & set(dead)),
        "bad_predicted": len(events.bad & predicted),
        # Outputs beyond one per copy of the event on the input topic:
        # re-deliveries after a replica died or the group rebalanced.
        "duplicates": sum(max(0, n - inputs.get(i, (1,))[0]) for i, n in counts.items()),
        "dead_letter_reasons": sorted({h for h in dead.values()}),
        "http_requests": len(records),
        "phases": [],
    }
    records = sorted(records)
    bounds = [p["injected"] for p in phases[1:]] + [float("inf")]
    late_all = [i for i in inputs if i in out_at and out_at[i] - inputs[i][1] > LATE_S]
    # Late before the first fault (the group's first assignment aside,
    # should be none): the steady state the recoveries return to.
    res["late_before_faults"] = len([i for i in late_all
                                     if phases and inputs[i][1] + LATE_S < phases[0]["injected"]])
    for p, end in zip(phases, bounds):
        window = [r for r in records if p["injected"] <= r[0] < end]
        errors = [r for r in window if r[2] != 200]
        took = sorted(r[1] - r[0] for r in window)
        p99_ms = round(1000 * took[int(0.99 * (len(took) - 1))], 1) if took else None
        kinds = {}
        for r in errors:
            key = f"{r[2]} {r[3]}".strip()
            kinds[key] = kinds.get(key, 0) + 1
        # HTTP recovered: from the repair on, the first run of 20 answers in a
        # row that are 200 and not degraded.
        after = [r for r in window if r[0] >= p["repaired"]]
        http_rec = None
        for i in range(len(after)):
            run_ = after[i:i + 20]
            if len(run_) == 20 and all(r[2] == 200 and not r[4] for r in run_):
                http_rec = max(0.0, after[i][0] - p["repaired"])
                break
        # Late: out more than LATE_S after the broker appended it (what the
        # producer took to get it there is the producer's, reported apart).
        # A late event is this fault's when it became late (LATE_S after its
        # append) while this fault was the last one injected: an event
        # appended just before the next fault and held up by that one is the
        # next fault's, and one already late when the next fault came stays
        # this fault's (its recovery then runs past the next injection).
        late_ids = [i for i in late_all if p["injected"] <= inputs[i][1] + LATE_S < end]
        late = [out_at[i] for i in late_ids]
        producer_late = [inputs[i][1] - t for i, t in events.sent.items()
                         if p["injected"] <= t < end and i in inputs]
        stream_rec = max(0.0, max(late) - p["repaired"]) if late else 0.0
        ph = {"fault": p["fault"], "held_s": round(p["repairing"] - p["injected"], 1),
              "repair_s": round(p["repaired"] - p["repairing"], 1),
              "http_requests": len(window), "http_p99_ms": p99_ms,
              "http_errors": len(errors), "error_kinds": kinds,
              "errors_outside_fault": len([r for r in errors if r[0] > p["repaired"] + 15]),
              "http_recovery_s": None if http_rec is None else round(http_rec, 1),
              "stream_late_events": len(late), "stream_recovery_s": round(stream_rec, 1),
              "producer_max_delay_s": round(max(producer_late), 1) if producer_late else 0.0,
              # The latest few late events, times from the fault's injection:
              # [id, partition, copies on the topic, sent, appended, out].
              "latest_late": [[i, inputs[i][2], inputs[i][0]] +
                              [round(x - p["injected"], 2) for x in
                               (events.sent[i], inputs[i][1], out_at[i])]
                              for i in sorted(late_ids, key=out_at.get)[-5:]]}
        if "drain_exit" in p:
            ph["drain_exit"], ph["drain_s"] = p["drain_exit"], round(p["drain_s"], 2)
        res["phases"].append(ph)
    return res


def markdown(res):
    lines = ["| fault | held | HTTP requests | HTTP p99 | errors (kinds) | HTTP recovered after | "
             "late stream events | stream recovered after | producer's delay (max) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in res["phases"]:
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(p["error_kinds"].items())) or "none"
        extra = f" (exit {p['drain_exit']} in {p['drain_s']} s)" if "drain_exit" in p else ""
        lines.append(f"| {p['fault']}{extra} | {p['held_s']} s (+{p['repair_s']} s to repair) | "
                     f"{p['http_requests']} | {p['http_p99_ms']} ms | {p['http_errors']} ({kinds}) | "
                     f"{p['http_recovery_s']} s | {p['stream_late_events']} | "
                     f"{p['stream_recovery_s']} s | {p['producer_max_delay_s']} s |")
    lines.append("")
    retried = ", ".join(f"{k}: {int(v)}" for k, v in sorted(res.get("retries", {}).items()) if v)
    lines.append(f"nginx sent {res.get('nginx_upstream_failures', 0)} requests to another replica "
                 f"after a failure; rtml retries counted by the replicas alive at the end: "
                 f"{retried or 'none'}.")
    lines.append("")
    lines.append(f"Events on the input topic {res['events']} ({res['bad']} bad; "
                 f"{res['input_duplicates']} doubled by the producer's retries, "
                 f"{res['produce_failed']} never produced): {res['predicted']} "
                 f"predicted, {res['dead_letters']} dead letters ({', '.join(res['dead_letter_reasons'])}), "
                 f"{res['lost_count']} lost, {res['duplicates']} duplicates, "
                 f"{res['valid_dead_lettered']} valid events dead-lettered, "
                 f"{res['bad_predicted']} bad events predicted; {res['http_requests']} HTTP requests; "
                 f"{res['late_before_faults']} events late before the first fault.")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--http-rate", type=float, default=100)
    ap.add_argument("--event-rate", type=float, default=100)
    ap.add_argument("--hold", type=float, default=2)
    ap.add_argument("--gap", type=float, default=12)
    ap.add_argument("--json")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        res = run(d, a.rounds, a.http_rate, a.event_rate, a.hold, a.gap)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    print(markdown(res))
    return 0 if res["lost_count"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
