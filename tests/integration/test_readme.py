"""Every curl example in README.md, run as written against `rtml demo` (what
`make run` starts: the fraud model, its feature store with 5,000 user
profiles, the embedded broker and the generator), and checked against the
output the README shows for it, so that the README cannot drift from rtml.

How the README is read:
- a command is a line of a ```sh block starting with `curl` or `$ curl`, with
  its continuation lines (a trailing backslash, or an open quote); a line
  starting with `for ` or `kcat ` (events sent to the demo's stream) is run
  too, in order, and must succeed;
- its documented output is either the comment lines right after it that start
  with `# {`, `# [` or `# "` (continued by `#   ` lines), the plain lines after
  a `$ curl` command, or the ```json block that directly follows its block;
  `...` in an output stands for anything;
- the only change made to a command is the address: localhost:8080 becomes the
  demo's port, localhost:9092 its broker's. Commands run with bash from the repository's root.
An output showing an error must come with its documented 4xx status; every
other command must answer 2xx.
"""
import os
import re
import shlex
import subprocess
import tempfile
import unittest

from harness import REPO, RTML, fraud_demo_config, free_port, wait_for

README = os.path.join(REPO, "README.md")


def complete(cmd):
    if cmd.rstrip().endswith("\\"):
        return False
    try:
        shlex.split(cmd)
        return True
    except ValueError:  # an open quote: the command goes on
        return False


def is_output_start(comment):
    return comment[:1] in ('{', '[', '"')


def examples(text):
    """(line number, command, expected output or None) for each curl example."""
    found = []
    blocks = list(re.finditer(r"```(\w*)\n(.*?)```", text, re.S))
    for n, block in enumerate(blocks):
        if block.group(1) != "sh":
            continue
        first_line = text.count("\n", 0, block.start(2)) + 1
        lines = block.group(2).split("\n")
        i = 0
        while i < len(lines):
            line = lines[i]
            dollar = line.startswith("$ curl")
            if line.startswith(("for ", "kcat ")):
                found.append((first_line + i, line, None))
                i += 1
                continue
            if not (dollar or line.startswith("curl")):
                i += 1
                continue
            start = i
            cmd = line[2:] if dollar else line
            while not complete(cmd) and i + 1 < len(lines):
                i += 1
                cmd += "\n" + lines[i]
            i += 1
            out = []
            if dollar:
                while i < len(lines) and lines[i] and not lines[i].startswith("$ "):
                    out.append(lines[i])
                    i += 1
            elif i < len(lines) and lines[i].startswith("# ") and is_output_start(lines[i][2:]):
                out.append(lines[i][2:])
                i += 1
                while i < len(lines) and lines[i].startswith("#   "):
                    out.append(lines[i][2:].strip())
                    i += 1
            found.append([first_line + start, cmd, "".join(out) if out else None])
        # A ```json block right after the ```sh block documents its last command.
        if found and found[-1][2] is None and n + 1 < len(blocks):
            nxt = blocks[n + 1]
            if nxt.group(1) == "json" and not text[block.end():nxt.start()].strip():
                found[-1][2] = nxt.group(2).strip()
    return found


def pattern(expected):
    """A regex for a documented output: `...` matches anything."""
    return "".join(".*" if part == "..." else re.escape(part)
                   for part in re.split(r"(\.\.\.)", expected))


def documented_status(expected):
    m = re.search(r'"code":(\d{3})', expected or "")
    if m:
        return int(m.group(1))
    if expected and expected.startswith('"{') and "feast.errors" in expected:  # Feast's shape
        for cls, status in (("NotFoundException", 404), ("PushSourceNotFound", 422)):
            if cls in expected:
                return status
        return 400
    m = re.match(r'\{"error":"[^"]*","reason":"(\w+)"', expected or "")  # V2's shape
    if m:
        return 404 if m.group(1) in ("unknown_model", "unknown_version", "not_found") else 400
    return None


class ReadmeExamplesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        config = fraud_demo_config(cls.dir.name, users=5000)  # profiles for the examples
        cls.port, cls.broker_port = free_port(), free_port()
        cls.demo = subprocess.Popen(
            [RTML, "demo", "--config", config, "--port", str(cls.port),
             "--broker-port", str(cls.broker_port), "--rate", "200", "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: subprocess.run(
            ["curl", "-sf", f"http://127.0.0.1:{cls.port}/readyz"], capture_output=True
        ).returncode == 0, 30, "the demo to be ready")
        with open(README) as f:
            cls.examples = examples(f.read())

    @classmethod
    def tearDownClass(cls):
        cls.demo.terminate()
        cls.demo.wait(30)
        cls.dir.cleanup()

    def with_ports(self, cmd):
        cmd = cmd.replace("localhost:8080", f"127.0.0.1:{self.port}")
        for broker in ("localhost:9092", "127.0.0.1:9092"):
            cmd = cmd.replace(broker, f"127.0.0.1:{self.broker_port}")
        return cmd

    def run_example(self, cmd):
        cmd = self.with_ports(cmd)
        cmd = cmd.replace("curl ", "curl -w '\\n%{http_code}' ", 1)
        r = subprocess.run(["bash", "-c", cmd], cwd=REPO, capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, f"{cmd}\n{r.stderr}")
        body, _, status = r.stdout.rpartition("\n")
        return body.strip(), int(status)

    def test_the_readme_has_its_examples(self):
        self.assertGreaterEqual(len(self.examples), 10)
        documented = [e for e in self.examples if e[2] is not None]
        self.assertGreaterEqual(len(documented), 9)

    def test_every_example_gives_what_the_readme_says(self):
        for line, cmd, expected in self.examples:  # in README order, as a reader runs them
            with self.subTest(line=line):
                if not cmd.startswith("curl"):  # events for the stream
                    r = subprocess.run(["bash", "-c", self.with_ports(cmd)], cwd=REPO,
                        capture_output=True, text=True, timeout=60)
                    self.assertEqual(r.returncode, 0, f"README.md:{line}: {cmd}\n{r.stderr}")
                    continue
                body, status = self.run_example(cmd)
                want = documented_status(expected)
                if want is not None:
                    self.assertEqual(status, want, f"README.md:{line}: {body}")
                else:
                    self.assertTrue(200 <= status < 300, f"README.md:{line}: {status} {body}")
                if expected is not None:
                    self.assertRegex(body, "^" + pattern(expected) + "$",
                                     f"README.md:{line}: the README shows\n{expected}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
