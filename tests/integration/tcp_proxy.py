"""A small TCP proxy on a free loopback port for fault injection: it forwards
to an upstream port and can delay the upstream's replies or stall them
(forward nothing until resumed), to make a dependency slow without touching it,
or add latency (a round trip through it takes latency_s longer, chunks in
flight together, as over a longer network). Used by the overload tests, the
chaos suite and bench/redis_predict.sh."""
import queue
import socket
import threading
import time


class TcpProxy:
    def __init__(self, upstream_port, upstream_host="127.0.0.1"):
        self.upstream = (upstream_host, upstream_port)
        self.delay_s = 0.0  # added before each chunk of the upstream's replies
        self.latency_s = 0.0  # added to each round trip: half on the way there, half back
        self._flowing = threading.Event()
        self._flowing.set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closed = False
        self._conns = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self):
        """Replies stop (requests still reach the upstream) until resume()."""
        self._flowing.clear()

    def resume(self):
        self._flowing.set()

    def close(self):
        self._closed = True
        self._flowing.set()
        self._listener.close()
        with self._lock:
            for s in self._conns:
                try:
                    s.close()
                except OSError:
                    pass

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, src, dst, replies):
        """Reads src; a second thread forwards each chunk to dst when it is due
        (latency_s / 2 after it came), so chunks behind it are not held up."""
        chunks = queue.Queue()
        threading.Thread(target=self._forward, args=(chunks, src, dst, replies),
                         daemon=True).start()
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                chunks.put((time.monotonic() + self.latency_s / 2, data))
        except OSError:
            pass
        chunks.put((0, None))

    def _forward(self, chunks, src, dst, replies):
        try:
            while True:
                due, data = chunks.get()
                if data is None:
                    break
                if replies:
                    self._flowing.wait()
                    if self.delay_s:
                        time.sleep(self.delay_s)
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
