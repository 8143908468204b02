"""HTTPS on rtml's own server (http.tls), with certificates the test makes
with Debian's openssl: a CA, a server certificate for 127.0.0.1 and client
certificates, one from the CA and one from a stranger's CA.

What must hold: with http.tls.cert/key, health, predicts (one and batch),
keep-alive and `Connection: close` work over HTTPS for Python's ssl and for
curl, answers equal to the plain server's; plain HTTP on the TLS port is
refused and the server keeps serving. With http.tls.client_ca (mutual TLS),
a client without a certificate, or with one the CA did not sign, fails the
handshake; one with a certificate from the CA is served. A missing file, a
key that is not the certificate's, or a half-given tls section stops the
start with a message naming the key.
"""
import http.client
import json
import os
import socket
import ssl
import subprocess
import tempfile
import unittest

from harness import REPO, RTML, Server

MODELS = os.path.join(REPO, "tests", "testdata", "models")
ROW = {"features": {"f0": 0.1, "f1": 2.0, "f2": -3.5, "f3": 0.0, "f4": 1.25, "f5": 3}}
BATCH = {"instances": [ROW["features"], {"f1": 1.0}]}


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """ca.pem, server.pem/key (SAN 127.0.0.1), client.pem/key (from ca) and
    stranger.pem/key (from another CA) in d: EC P-256, a day's validity."""
    def ca(name):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "1",
                "-subj", f"/CN=rtml test {name}", cwd=d)

    def leaf(name, signer, ext):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(ext)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{signer}.pem", "-CAkey",
                f"{signer}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "1",
                "-extfile", f"{name}.ext", cwd=d)

    ca("ca")
    ca("other_ca")
    leaf("server", "ca", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    leaf("client", "ca", "extendedKeyUsage=clientAuth\n")
    leaf("stranger", "other_ca", "extendedKeyUsage=clientAuth\n")


def write_config(d, tls=None):
    path = os.path.join(d, f"rtml-{abs(hash(tls))}.yaml")
    with open(path, "w") as f:
        f.write(f"models: {{repository: {MODELS}, default: binary}}\n")
        if tls:
            f.write(f"http:\n  tls: {tls}\n")
    return path


def client_context(d, cert=None):
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(d, f"{cert}.pem"), os.path.join(d, f"{cert}.key"))
    return ctx


class PkiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = cls.tmp.name
        make_pki(cls.d)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def curl(self, server, *args):
        return subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert",
                               os.path.join(self.d, "ca.pem"), *args,
                               f"https://127.0.0.1:{server.port}/readyz"],
                              capture_output=True, text=True)


class HttpsTest(PkiTest):
    def test_https_answers_like_plain_http(self):
        plain = Server(config=write_config(self.d))
        self.addCleanup(plain.stop)
        server = Server(config=write_config(self.d, "{cert: server.pem, key: server.key}"),
                        ssl_context=client_context(self.d))
        self.addCleanup(server.stop)
        self.assertTrue(any("serving on https://" in line for line in server.log))
        for body in (ROW, BATCH):
            want = plain.request("POST", "/predict", body)
            got = server.request("POST", "/predict", body)
            self.assertEqual(got[0], 200, got)
            self.assertEqual(got[1], want[1])
        # Keep-alive: many requests on one TLS connection, then Connection: close.
        conn = server.connection()
        for _ in range(20):
            self.assertEqual(server.request("POST", "/predict", ROW, conn=conn)[0], 200)
        status, _, headers = server.request("GET", "/healthz", headers={"Connection": "close"},
                                            conn=conn)
        self.assertEqual((status, headers.get("Connection")), (200, "close"))
        conn.close()
        # A bad request over HTTPS is the same clear 400.
        status, body, _ = server.request("POST", "/predict", {"features": {"f1": "x"}})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["error"]["reason"], "wrong_type")
        # curl verifies the certificate against the test CA and ends cleanly.
        r = self.curl(server)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIs(json.loads(r.stdout)["ready"], True)
        r = self.curl(server, "-H", "Connection: close")
        self.assertEqual(r.returncode, 0, r.stderr)
        # Plain HTTP to the TLS port gets no HTTP answer; the server goes on.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            self.assertFalse(data.startswith(b"HTTP/1.1 200"), data)
        self.assertEqual(server.request("GET", "/readyz")[0], 200)
        # A client that does not trust the certificate refuses it.
        untrusting = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=5,
                                                 context=ssl.create_default_context())
        with self.assertRaises(ssl.SSLCertVerificationError):
            server.request("GET", "/readyz", conn=untrusting)


class MutualTlsTest(PkiTest):
    def test_a_client_without_a_certificate_from_the_ca_is_refused(self):
        config = write_config(self.d, "{cert: server.pem, key: server.key, client_ca: ca.pem}")
        server = Server(config=config, ssl_context=client_context(self.d, "client"))
        self.addCleanup(server.stop)
        self.assertTrue(any("mutual TLS" in line for line in server.log))
        status, body, _ = server.request("POST", "/predict", ROW)
        self.assertEqual(status, 200, body)
        for cert in (None, "stranger"):
            with self.subTest(cert=cert):
                ctx = client_context(self.d, cert)
                with self.assertRaises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
                        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                            # TLS 1.3: the refusal arrives with the first read.
                            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                            if not s.recv(4096):
                                raise ConnectionResetError("closed without an answer")
        self.assertNotEqual(self.curl(server).returncode, 0)
        r = self.curl(server, "--cert", os.path.join(self.d, "client.pem"), "--key",
                      os.path.join(self.d, "client.key"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(server.request("GET", "/readyz")[0], 200)


class BadTlsConfigTest(PkiTest):
    def test_unusable_files_stop_the_start_naming_the_key(self):
        cases = [
            ("{cert: nowhere.pem, key: server.key}", "http.tls.cert: cannot use"),
            ("{cert: server.pem, key: client.key}", "is not the key of"),
            ("{cert: server.key, key: server.key}", "not a PEM certificate chain"),
            ("{cert: server.pem, key: server.key, client_ca: nowhere.pem}", "http.tls.client_ca"),
            ("{cert: server.pem}", "give both cert and key"),
        ]
        for tls, want in cases:
            with self.subTest(tls=tls):
                r = subprocess.run([RTML, "serve", "--port", "0", "--config",
                                    write_config(self.d, tls)],
                                   capture_output=True, text=True, timeout=30)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn(want, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
