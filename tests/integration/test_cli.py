"""CLI integration tests: help everywhere, models inspect, version, config
errors that say what to fix, a taken port, and a clean stop on SIGTERM."""
import os
import signal
import socket
import subprocess
import tempfile
import unittest

from harness import FRAUD, REPO, RTML, Server, fraud_demo_config, free_port


def run(*args, timeout=30):
    return subprocess.run([RTML, *args], capture_output=True, text=True, timeout=timeout)


class CliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # The demo's models and feature definitions, with an in-memory store
        # so that several servers may run at once.
        cls.dir = tempfile.TemporaryDirectory()
        cls.config = fraud_demo_config(cls.dir.name, store="memory")

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_help_everywhere(self):
        for args in [["--help"], ["serve", "--help"], ["models", "--help"],
                     ["models", "inspect", "--help"], ["version", "--help"]]:
            with self.subTest(args=args):
                r = run(*args)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("Usage", r.stdout)
        self.assertIn("--port", run("serve", "--help").stdout)

    def test_no_subcommand_is_an_error_with_usage(self):
        r = run()
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("subcommand", (r.stdout + r.stderr).lower())

    def test_bad_numbers_in_flags_are_named(self):
        for args, flag, value in ((("demo", "--shift-after", "-3"), "--shift-after", "-3"),
                                  (("demo", "--rate", "fast"), "--rate", "fast"),
                                  (("serve", "--threads", "-1"), "--threads", "-1")):
            r = run(*args)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(f"{flag}: must be a number, 0 or more, not '{value}'",
                          r.stdout + r.stderr)

    def test_version(self):
        r = run("version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^rtml \d+\.\d+\.\d+")
        self.assertIn("libxgboost 1.7", r.stdout)

    def test_models_inspect_file_version_and_repository(self):
        model_dir = os.path.join(FRAUD, "models", "fraud", "1")
        r = run("models", "inspect", os.path.join(model_dir, "model.json"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("binary:logistic, 30 features, 1 outputs, 200 trees", r.stdout)
        self.assertIn("depth 6", r.stdout)
        r = run("models", "inspect", model_dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("amount", r.stdout)
        r = run("models", "inspect", os.path.join(FRAUD, "models"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("version 1 (default): backend native", r.stdout)

    def test_models_inspect_explains_a_bad_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write('{"not": "a model"}')
            f.flush()
            r = run("models", "inspect", f.name)
        self.assertEqual(r.returncode, 1)
        self.assertIn("learner", r.stderr)

    def test_bad_config_names_the_key_and_exits_2(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write("http:\n  prot: 9000\n")
            f.flush()
            r = run("serve", "--config", f.name)
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown key 'prot'", r.stderr)

    def test_missing_models_folder_says_what_to_check(self):
        with tempfile.TemporaryDirectory() as d:
            r = run("serve", "--models", d, "--port", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("holds no models", r.stdout + r.stderr)

    def test_taken_port_is_a_clear_error(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            r = run("serve", "--config", self.config, "--port", str(port))
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"cannot listen on 127.0.0.1:{port}", r.stdout + r.stderr)

    def test_second_server_on_the_same_port_is_refused(self):
        first = Server(config=self.config)
        try:
            r = run("serve", "--config", self.config, "--port",
                    str(first.port))
            self.assertEqual(r.returncode, 1)
            self.assertIn("cannot listen", r.stdout + r.stderr)
        finally:
            first.stop()

    def test_environment_sets_config_keys_and_names_bad_ones(self):
        port = free_port()
        server = Server(config=self.config, port=port,
                        env={"RTML_HTTP__MAX_BODY_BYTES": "100", "RTML_LOG__FORMAT": "json"})
        try:
            status, body, _ = server.request("POST", "/predict", {"features": {"amount": 1.0, "x": "y" * 200}})
            self.assertEqual(status, 413, body)  # the environment's 100 bytes, not the default 1 MiB
            self.assertTrue(any(line.startswith("{") for line in server.log), server.log[:3])
        finally:
            server.stop()
        r = subprocess.run([RTML, "serve", "--config", self.config], capture_output=True, text=True,
                           timeout=30, env={**os.environ, "RTML_HTTP__PROT": "1"})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("prot", r.stderr)
        self.assertIn("RTML_HTTP__PROT", r.stderr)

    def test_probe_exits_by_what_the_server_answers(self):
        server = Server(config=self.config)
        try:
            url = f"http://127.0.0.1:{server.port}"
            ok = run("probe", "--url", url)
            self.assertEqual(ok.returncode, 0, ok.stderr)
            self.assertIn("ok", ok.stdout)
            self.assertEqual(run("probe", "--ready", "--url", url).returncode, 0)
            # Found from the server's config and environment, as in the image.
            env = {**os.environ, "RTML_HTTP__PORT": str(server.port)}
            found = subprocess.run([RTML, "probe", "--config", self.config], capture_output=True,
                                   text=True, timeout=30, env=env)
            self.assertEqual(found.returncode, 0, found.stderr)
        finally:
            server.stop()
        gone = run("probe", "--url", url, "--timeout", "1")
        self.assertEqual(gone.returncode, 1)
        self.assertIn("cannot reach", gone.stderr)
        bad = run("probe", "--url", "localhost:8080")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("http://", bad.stderr)

    def test_probe_gives_up_on_a_server_that_does_not_answer(self):
        with socket.socket() as silent:  # accepts, never answers
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            r = run("probe", "--url", f"http://127.0.0.1:{silent.getsockname()[1]}", "--timeout", "0.5",
                    timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot reach", r.stderr)

    def test_flags_override_config_and_sigterm_stops_cleanly(self):
        server = Server(config=self.config)  # config says 8080; --port 0 wins
        self.assertNotEqual(server.port, 8080)
        server.proc.send_signal(signal.SIGTERM)
        self.assertEqual(server.proc.wait(10), 0)
        self.assertTrue(any("stopping" in line for line in server.log))
        server.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
