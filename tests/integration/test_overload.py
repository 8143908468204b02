"""Overload and deadline tests: a real `rtml serve` with one event loop, a
burst of 1,024-row batches far beyond what it can score within its queueing
budget, and deadlines from the X-Request-Timeout-Ms header.

What must hold: work past http.max_queue_ms is refused at once with 503, a
JSON body naming the reason and Retry-After; health checks keep answering
during the burst; every request gets an answer; a deadline that cannot be
met is a 504, not started, answered near the deadline; a feature-store read
inherits the time left (a stalled Redis costs the deadline, not the store's
own timeout, and is not blamed for it).
"""
import http.client
import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import unittest

from harness import FRAUD, Server, fraud_demo_config, wait_for
from tcp_proxy import TcpProxy
from test_features import RedisServer

TIMEOUT = "X-Request-Timeout-Ms"


def batch_body(n, first_user=1000):
    return json.dumps({"instances": [{"user_id": first_user + i % 400, "amount": 10.0 + i}
                                     for i in range(n)]})


def raw_request(body, headers=None):
    head = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (f"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n{body}").encode()


def read_response(sock):
    """(status, parsed JSON body, headers, seconds until it arrived) from a raw socket."""
    resp = http.client.HTTPResponse(sock)
    resp.begin()
    data = resp.read()
    return resp.status, json.loads(data), dict(resp.getheaders())


def one_loop_server(test, extra):
    """A demo server with one event loop and config `extra`, stopped at the
    test's end, that has scored a few batches (its estimates learned)."""
    tmp = tempfile.TemporaryDirectory()
    test.addCleanup(tmp.cleanup)
    config = fraud_demo_config(tmp.name, store="memory", extra=extra)
    server = Server(config=config, threads=1)
    test.addCleanup(server.stop)
    for _ in range(3):
        test.assertEqual(server.request("POST", "/predict", batch_body(1024))[0], 200)
    return server


def metric(server, name):
    """The sum of the series of `name` (a prefix) in the server's /metrics."""
    text = server.request("GET", "/metrics")[1]
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name))


class Burst:
    """Sends one request on each of n fresh connections while the server is
    stopped (SIGSTOP), then lets it go on (SIGCONT): it finds every request
    already there, as a server under a burst does, whatever the speed of
    this client."""

    def __init__(self, server, n, body, headers=None):
        # Keep-alive connections the server has accepted and read from, as
        # a load balancer's are; then every request lands at once.
        self.socks = [self.connected(server.port) for _ in range(n)]
        request = raw_request(body, headers)
        server.proc.send_signal(signal.SIGSTOP)
        try:
            for s in self.socks:
                s.sendall(request)
            self.t0 = time.monotonic()
        finally:
            server.proc.send_signal(signal.SIGCONT)

    @staticmethod
    def connected(port):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = http.client.HTTPResponse(s)
        resp.begin()
        resp.read()
        return s

    def answers(self):
        out = []
        for s in self.socks:
            s.settimeout(30)
            status, body, headers = read_response(s)
            out.append((status, body, headers, time.monotonic() - self.t0))
            s.close()
        return out


class OverloadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        config = fraud_demo_config(
            cls.tmp.name, store="memory",
            extra="http: {max_queue_ms: 20, max_queue_rows: 100000}\n")
        cls.server = Server(config=config, threads=1)
        cls.big = batch_body(1024)
        for _ in range(3):  # the loop learns what a batch costs
            assert cls.server.request("POST", "/predict", cls.big)[0] == 200

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.tmp.cleanup()

    def metric(self, name):
        return metric(self.server, name)

    def test_a_burst_past_the_queue_budget_is_refused_at_once_with_retry_after(self):
        before = self.metric('rtml_request_errors_total{reason="queue_wait"}')
        burst = Burst(self.server, 64, self.big)
        # Health checks are answered while the queue is full.
        health = self.server.connection()
        t = time.monotonic()
        health.request("GET", "/healthz")
        resp = health.getresponse()
        resp.read()
        self.assertEqual(resp.status, 200)
        health_s = time.monotonic() - t
        # So is a single row: the loop scores it itself, ahead of the
        # batches queued for its scoring thread.
        t = time.monotonic()
        health.request("POST", "/predict", body=json.dumps({"user_id": 1001, "amount": 5}),
                       headers={"Content-Type": "application/json"})
        small = health.getresponse()
        small.read()
        self.assertEqual(small.status, 200)
        small_s = time.monotonic() - t
        answers = burst.answers()
        codes = [a[0] for a in answers]
        self.assertEqual(set(codes) - {200, 503}, set(), codes)
        self.assertGreater(codes.count(503), 0, codes)
        self.assertGreater(codes.count(200), 0, codes)
        for status, body, headers, _ in answers:
            if status == 503:
                self.assertEqual(body["error"]["reason"], "queue_wait", body)
                self.assertIn("http.max_queue_ms", body["error"]["message"])
                self.assertGreaterEqual(int(headers["Retry-After"]), 1)
            else:
                self.assertEqual(len(body["predictions"]), 1024)
        # Served work kept within the budget plus about a batch's own time:
        # the burst would take over half a second unrefused.
        served = [a[3] for a in answers if a[0] == 200]
        self.assertLess(max(served), 0.6, served)
        self.assertLess(health_s, 0.3)
        self.assertLess(small_s, 0.3)
        self.assertLess(small_s, max(served), (small_s, served))
        after = self.metric('rtml_request_errors_total{reason="queue_wait"}')
        self.assertEqual(after - before, codes.count(503))
        self.assertGreater(self.metric("rtml_http_queue_wait_seconds_count"), 0)

    def test_the_rows_bound_refuses_with_queue_full(self):
        server = one_loop_server(self, "http: {max_queue_ms: 0, max_queue_rows: 2048}\n")
        answers = Burst(server, 32, self.big).answers()
        full = [a for a in answers if a[0] == 503]
        self.assertGreater(len(full), 0)
        self.assertEqual({a[1]["error"]["reason"] for a in full}, {"queue_full"})
        self.assertIn("http.max_queue_rows", full[0][1]["error"]["message"])
        self.assertEqual({a[0] for a in answers}, {200, 503})

    def test_deadlines_on_an_idle_server(self):
        ok = self.server.request("POST", "/predict", {"user_id": 1001, "amount": 5},
                                 headers={TIMEOUT: "1000"})
        self.assertEqual(ok[0], 200, ok[1])
        late = self.server.request("POST", "/predict", self.big, headers={TIMEOUT: "0.01"})
        self.assertEqual(late[0], 504, late[1])
        self.assertEqual(late[1]["error"]["reason"], "deadline_exceeded")
        for bad in ("0", "-5", "soon", "1e12"):
            status, body, _ = self.server.request("POST", "/predict", {"amount": 5},
                                                  headers={TIMEOUT: bad})
            self.assertEqual(status, 400, (bad, body))
            self.assertEqual(body["error"]["reason"], "bad_timeout")
            self.assertEqual(body["error"]["field"], TIMEOUT)

    def test_cheap_requests_ignore_the_deadline_header(self):
        status, _, _ = self.server.request("GET", "/healthz", headers={TIMEOUT: "soon"})
        self.assertEqual(status, 200)


class QueueDeadlineTest(unittest.TestCase):
    big = batch_body(1024)

    def test_a_deadline_that_the_queue_cannot_meet_is_a_504_near_the_deadline(self):
        # No queue bound: the queue grows and only the deadline refuses.
        server = one_loop_server(self, "http: {max_queue_ms: 0, max_queue_rows: 0}\n")
        burst = Burst(server, 40, self.big)  # ~120 ms of work (~3 ms a batch)
        wait_for(lambda: metric(server, "rtml_http_queued_requests") >= 10, 5, "a queue",
                 poll_s=0.001)
        # A batch, queued behind the others on the loop's scoring thread (a
        # single row would be scored on the loop, ahead of them).
        sock = socket.create_connection(("127.0.0.1", server.port))
        t = time.monotonic()
        sock.sendall(raw_request(self.big, {TIMEOUT: "5"}))
        status, body, _ = read_response(sock)
        elapsed = time.monotonic() - t
        sock.close()
        self.assertEqual({a[0] for a in burst.answers()}, {200})  # no bound, all served
        self.assertEqual(status, 504, body)
        self.assertEqual(body["error"]["reason"], "deadline_exceeded")
        self.assertIn("not started", body["error"]["message"])
        # Refused at admission behind ~120 ms of queued work (or by the
        # queue's timer at its deadline, at most one batch's scoring late),
        # with room for a slow CI.
        self.assertLess(elapsed, 0.005 + 0.040, elapsed)


class DefaultTimeoutTest(unittest.TestCase):
    def test_http_default_timeout_ms_applies_to_requests_without_a_header(self):
        with tempfile.TemporaryDirectory() as tmp:
            config = fraud_demo_config(tmp, store="memory",
                                       extra="http: {default_timeout_ms: 0.01}\n")
            server = Server(config=config, threads=1)
            try:
                status, body, _ = server.request("POST", "/predict", batch_body(1024))
                self.assertEqual(status, 504, body)
                # The header overrides the default.
                status, body, _ = server.request("POST", "/predict", batch_body(1024),
                                                 headers={TIMEOUT: "5000"})
                self.assertEqual(status, 200, body)
            finally:
                server.stop()


def redis_behind_proxy(test, edit_config=None):
    """A demo server (one loop) whose Redis store is behind a TcpProxy, with
    the store's own timeout long (2 s) so a cut at a deadline shows; returns
    (server, proxy). `edit_config(text, tmpdir)` may change the config."""
    redis = RedisServer()
    test.addCleanup(redis.stop)
    proxy = TcpProxy(redis.port)
    test.addCleanup(proxy.close)
    tmp = tempfile.TemporaryDirectory()
    test.addCleanup(tmp.cleanup)
    config = fraud_demo_config(tmp.name, store="redis", redis_port=proxy.port)
    with open(config) as f:
        text = f.read().replace("timeout_ms: 200", "timeout_ms: 2000")
    if edit_config:
        text = edit_config(text, tmp.name)
    with open(config, "w") as f:
        f.write(text)
    server = Server(config=config, threads=1)
    test.addCleanup(server.stop)
    return server, proxy


class StoreDeadlineTest(unittest.TestCase):
    """A stalled Redis (a proxy that stops forwarding its replies) costs a
    request its deadline, not redis timeout_ms, and does not open the circuit
    breaker: once Redis answers again, so does the next request."""

    def test_a_store_read_inherits_the_time_left(self):
        server, proxy = redis_behind_proxy(self)
        row = {"user_id": 1001, "amount": 5}
        status, body, _ = server.request("POST", "/predict", row)
        self.assertEqual(status, 200, body)
        proxy.stall()
        t = time.monotonic()
        status, body, _ = server.request("POST", "/predict", row, headers={TIMEOUT: "80"})
        elapsed = time.monotonic() - t
        self.assertEqual(status, 504, body)
        self.assertEqual(body["error"]["reason"], "deadline_exceeded")
        self.assertIn("stored features", body["error"]["message"])
        self.assertLess(elapsed, 0.080 + 0.150, elapsed)
        proxy.resume()
        status, body, _ = server.request("POST", "/predict", row, headers={TIMEOUT: "1000"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["feature_store"], "ok")  # the breaker stayed closed


    def test_predicts_waiting_on_a_stalled_store_do_not_stall_the_loop(self):
        """The loop reads Redis without blocking: with one loop and predicts
        waiting on a stalled Redis, health checks, metrics and a predict that
        needs nothing from the store answer at once; the waiting predicts
        answer (from the store) once Redis does."""
        server, proxy = redis_behind_proxy(self)
        row = {"user_id": 1001, "amount": 5}
        status, want, _ = server.request("POST", "/predict", row)
        self.assertEqual((status, want["feature_store"]), (200, "ok"), want)
        stored = {k: v for k, v in row.items()}
        stored.update(avg_amount_30d=80.0, account_age_days=400, card_age_days=300, user_age=40,
                      credit_limit=5000.0, utilization=0.3, email_age_days=900,
                      chargebacks_365d=0, txn_count_1h=1, txn_count_24h=3, amount_sum_24h=120.0,
                      seconds_since_last_txn=3600)
        started = metric(server, "rtml_http_queue_wait_seconds_count")
        proxy.stall()
        answers = []

        def predict():
            answers.append(server.request("POST", "/predict", row, headers={TIMEOUT: "5000"}))
        waiting = [threading.Thread(target=predict) for _ in range(4)]
        for t in waiting:
            t.start()
        wait_for(lambda: metric(server, "rtml_http_queue_wait_seconds_count") >= started + 4,
                 5, "the four predicts to start")
        for method, path, body in (("GET", "/healthz", None), ("GET", "/metrics", None),
                                   ("POST", "/predict", stored)):
            t = time.monotonic()
            status, answer, _ = server.request(method, path, body)
            elapsed = time.monotonic() - t
            self.assertEqual(status, 200, (path, answer))
            self.assertLess(elapsed, 0.5, f"{path} waited {elapsed:.3f} s behind the stalled store")
        self.assertEqual(answers, [], "a predict was answered while Redis was stalled")
        proxy.resume()
        for t in waiting:
            t.join(10)
        self.assertEqual(len(answers), 4)
        for status, body, _ in answers:
            self.assertEqual(status, 200, body)
            self.assertEqual(body["feature_store"], "ok", body)
            self.assertEqual(body["prediction"], want["prediction"], body)


    def test_batches_read_redis_on_the_scoring_thread_without_stalling_the_loop(self):
        """A batch is scored on the loop's scoring thread, which reads Redis
        on a connection of its own: its answers are the single rows'
        answers (scored on the loop), and while Redis is stalled under a
        waiting batch the loop answers health checks and single rows."""
        server, proxy = redis_behind_proxy(self)
        rows = [{"user_id": 1001 + i, "amount": 5.0 + i} for i in range(64)]
        singles = []
        for row in rows:
            status, body, _ = server.request("POST", "/predict", row)
            self.assertEqual((status, body["feature_store"]), (200, "ok"), body)
            singles.append(body["prediction"])
        status, body, _ = server.request("POST", "/predict", {"instances": rows})
        self.assertEqual((status, body["feature_store"]), (200, "ok"), body)
        self.assertEqual(body["predictions"], singles)

        started = metric(server, "rtml_http_queue_wait_seconds_count")
        proxy.stall()
        answers = []
        waiting = threading.Thread(target=lambda: answers.append(server.request(
            "POST", "/predict", {"instances": rows}, headers={TIMEOUT: "5000"})))
        waiting.start()
        wait_for(lambda: metric(server, "rtml_http_queue_wait_seconds_count") >= started + 1,
                 5, "the batch to start")
        stored = dict(rows[0], avg_amount_30d=80.0, account_age_days=400, card_age_days=300,
                      user_age=40, credit_limit=5000.0, utilization=0.3, email_age_days=900,
                      chargebacks_365d=0, txn_count_1h=1, txn_count_24h=3, amount_sum_24h=120.0,
                      seconds_since_last_txn=3600)
        for method, path, body in (("GET", "/healthz", None), ("POST", "/predict", stored)):
            t = time.monotonic()
            status, answer, _ = server.request(method, path, body)
            self.assertEqual(status, 200, (path, answer))
            self.assertLess(time.monotonic() - t, 0.5, f"{path} waited behind the stalled batch")
        self.assertEqual(answers, [], "the batch was answered while Redis was stalled")
        proxy.resume()
        waiting.join(10)
        self.assertEqual(len(answers), 1)
        status, body, _ = answers[0]
        self.assertEqual((status, body["feature_store"]), (200, "ok"), body)
        self.assertEqual(body["predictions"], singles)


class FallbackTest(unittest.TestCase):
    """model.yaml's fallback answers when the version cannot in time: with
    Redis stalled, a request with a deadline gets version 1's answer (scored
    without the store) near its deadline instead of a 504, marked and
    counted; a bad request is still a 400."""

    def test_a_stalled_store_falls_back_to_the_named_version_within_the_deadline(self):
        def with_fallback(text, tmpdir):
            models = os.path.join(tmpdir, "models")
            shutil.copytree(os.path.join(FRAUD, "models", "fraud", "1"),
                            os.path.join(models, "fraud", "1"))
            shutil.copytree(os.path.join(models, "fraud", "1"),
                            os.path.join(models, "fraud", "2"))
            with open(os.path.join(models, "fraud", "2", "model.yaml"), "a") as f:
                f.write("fallback: {version: 1}\n")
            return text.replace(os.path.join(FRAUD, "models"), models)
        server, proxy = redis_behind_proxy(self, with_fallback)
        row = {"id": "t1", "user_id": 1001, "amount": 5}
        status, body, _ = server.request("POST", "/predict", row, headers={TIMEOUT: "1000"})
        self.assertEqual(status, 200, body)
        self.assertEqual((body["version"], body.get("fallback")), (2, None))
        proxy.stall()
        t = time.monotonic()
        status, body, _ = server.request("POST", "/predict", row, headers={TIMEOUT: "60"})
        elapsed = time.monotonic() - t
        self.assertEqual(status, 200, body)
        self.assertEqual(body["id"], "t1")
        self.assertEqual((body["version"], body["fallback_from"], body["fallback"],
                          body["fallback_reason"], body["fallback_kind"]),
                         (1, 2, True, "deadline_exceeded", "version"), body)
        self.assertGreaterEqual(elapsed, 0.060)
        self.assertLess(elapsed, 0.060 + 0.150, elapsed)
        # Version 1 scored the row on its inputs' defaults: what it answers alone without them.
        self.assertIn("avg_amount_30d", body["defaulted"])
        status, bad, _ = server.request("POST", "/predict", {"user_id": 1001},
                                        headers={TIMEOUT: "60"})
        self.assertEqual(status, 400, bad)
        self.assertEqual(bad["error"]["reason"], "missing_feature")
        self.assertEqual(metric(server, 'rtml_fallbacks_total{model="fraud",version="2",'
                                        'path="http",reason="deadline_exceeded"}'), 1)
        proxy.resume()
        status, body, _ = server.request("POST", "/predict", row, headers={TIMEOUT: "1000"})
        self.assertEqual((status, body["version"], body.get("fallback")), (200, 2, None), body)


if __name__ == "__main__":
    unittest.main()
