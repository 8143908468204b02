"""The deployment files checked offline: the Kubernetes manifests
(deploy/kubernetes: a base, a keda component and two overlays, rendered by
kustomize from scripts/install-tools.sh) and the compose stack
(deploy/compose.yaml; its rtml part runs for real in test_image.py).

What must hold: every base file and every overlay's rendering passes
kubernetes-validate --strict against the Kubernetes API schemas (and a
mistyped field fails it: the check is live); rtml loads the config the
ConfigMap carries; and what the schemas cannot see holds across objects:
the probes, Service, ServiceMonitor, PodDisruptionBudget and autoscalers
name what exists (ports, labels, the Deployment), the grace period covers
preStop + drain + shutdown grace, the event loops match the CPU request,
the autoscalers stop at the partition count, KEDA's trigger reads the
topic and group the config consumes, and no overlay has two autoscalers.

For the compose file: it parses; every image is rtml's (built from
deploy/Dockerfile by a service of the file) or an official one, pinned;
every file it mounts exists; named volumes are declared and used; host
ports are unique and each reaches a port its service listens on; services
it depends on exist; nginx's upstreams and Prometheus' targets are the rtml
replicas on rtml's port, Grafana's datasource is the Prometheus service;
rtml accepts the replicas' environment; the topics have the partitions the
replicas share; nginx, Prometheus (with the rules, laid out as mounted) and
the Grafana provisioning files load in Debian's nginx and promtool.
"""
import re
import shutil
import os
import subprocess
import tempfile
import unittest

import yaml

from harness import REPO, RTML, free_port

K8S = os.path.join(REPO, "deploy", "kubernetes")
KUSTOMIZE = os.path.join(REPO, ".tools", "bin", "kustomize")
VALIDATE = os.path.join(REPO, ".venv", "bin", "kubernetes-validate")
OVERLAYS = ["dev", "production"]
PARTITIONS = 12  # of the input topic, as docs/scaling.md plans it


def render(overlay):
    r = subprocess.run([KUSTOMIZE, "build", os.path.join(K8S, "overlays", overlay)],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"kustomize build {overlay}: {r.stderr}")
    return r.stdout


def validate(path):
    return subprocess.run([VALIDATE, "--strict", path], capture_output=True, text=True, timeout=120)


def by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d["kind"], []).append(d)
    return out


def one(objects, kind):
    found = objects.get(kind, [])
    if len(found) != 1:
        raise AssertionError(f"expected one {kind}, found {len(found)}")
    return found[0]


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


class KubernetesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for tool, how in ((KUSTOMIZE, "./scripts/install-tools.sh"), (VALIDATE, "./scripts/install-venv.sh")):
            if not os.path.exists(tool):
                raise AssertionError(f"{tool} is missing: run {how}")
        cls.dir = tempfile.TemporaryDirectory()
        cls.rendered = {o: render(o) for o in OVERLAYS}
        cls.objects = {o: by_kind(list(yaml.safe_load_all(text))) for o, text in cls.rendered.items()}

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_every_base_file_and_overlay_passes_the_api_schemas(self):
        base = os.path.join(K8S, "base")
        files = [os.path.join(base, f) for f in sorted(os.listdir(base))
                 if f.endswith(".yaml") and f not in ("kustomization.yaml", "rtml.yaml")]
        files.append(os.path.join(K8S, "components", "keda", "scaledobject.yaml"))
        for overlay, text in self.rendered.items():
            path = os.path.join(self.dir.name, f"{overlay}.yaml")
            with open(path, "w") as f:
                f.write(text)
            files.append(path)
        for path in files:
            r = validate(path)
            self.assertEqual(r.returncode, 0, f"{path}:\n{r.stdout}{r.stderr}")
            self.assertNotIn("failed", r.stdout + r.stderr)

    def test_a_mistyped_field_fails_validation(self):
        with open(os.path.join(K8S, "base", "deployment.yaml")) as f:
            text = f.read().replace("terminationGracePeriodSeconds", "terminationGracePeriodSecond")
        path = os.path.join(self.dir.name, "typo.yaml")
        with open(path, "w") as f:
            f.write(text)
        r = validate(path)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("terminationGracePeriodSecond", r.stdout + r.stderr)

    def config(self, objects):
        cm = one(objects, "ConfigMap")
        return yaml.safe_load(cm["data"]["rtml.yaml"]), cm

    def test_rtml_loads_the_config_the_configmap_carries(self):
        for overlay in OVERLAYS:
            _, cm = self.config(self.objects[overlay])
            path = os.path.join(self.dir.name, f"rtml-{overlay}.yaml")
            with open(path, "w") as f:
                f.write(cm["data"]["rtml.yaml"])
            # `rtml probe --config` loads the config as `rtml serve` would:
            # 2 if it is bad, 1 when it is good and nothing listens.
            r = subprocess.run([RTML, "probe", "--config", path, "--timeout", "0.2"],
                               capture_output=True, text=True, timeout=30,
                               env={**os.environ, "RTML_HTTP__PORT": "1"})
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("cannot reach", r.stderr)

    def test_objects_name_what_exists(self):
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay):
                o = self.objects[overlay]
                config, cm = self.config(o)
                dep = one(o, "Deployment")
                pod = dep["spec"]["template"]
                labels = pod["metadata"]["labels"]
                self.assertTrue(matches(dep["spec"]["selector"]["matchLabels"], labels))
                rtml = next(c for c in pod["spec"]["containers"] if c["name"] == "rtml")
                ports = {p["name"]: p["containerPort"] for p in rtml["ports"]}
                self.assertEqual(ports["http"], config["http"]["port"])
                self.assertEqual(ports["grpc"], config["grpc"]["port"])
                for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"),
                                    ("startupProbe", "/healthz")):
                    self.assertEqual(rtml[probe]["httpGet"]["path"], path)
                    self.assertIn(rtml[probe]["httpGet"]["port"], ports)
                volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
                self.assertEqual(volumes["config"]["configMap"]["name"], cm["metadata"]["name"])
                claim = volumes["models"]["persistentVolumeClaim"]["claimName"]
                self.assertEqual(one(o, "PersistentVolumeClaim")["metadata"]["name"], claim)
                mounts = {m["name"]: m["mountPath"] for m in rtml["volumeMounts"]}
                self.assertEqual(mounts["models"], config["models"]["repository"])
                env = {e["name"]: e for e in rtml["env"]}
                self.assertEqual(env["RTML_CONFIG"]["value"], mounts["config"] + "/rtml.yaml")
                secret = env["RTML_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"]
                if overlay == "dev":  # production brings its own, out of band
                    self.assertEqual(one(o, "Secret")["metadata"]["name"], secret)
                else:
                    self.assertNotIn("Secret", o)
                svc = one(o, "Service")
                self.assertTrue(matches(svc["spec"]["selector"], labels))
                self.assertIn(svc["spec"]["ports"][0]["targetPort"], ports)
                sm = one(o, "ServiceMonitor")
                self.assertTrue(matches(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"]))
                self.assertIn(sm["spec"]["endpoints"][0]["port"], {p["name"] for p in svc["spec"]["ports"]})
                self.assertEqual(sm["spec"]["endpoints"][0]["path"], "/metrics")
                pdb = one(o, "PodDisruptionBudget")
                self.assertTrue(matches(pdb["spec"]["selector"]["matchLabels"], labels))
                for obj in (dep, svc, sm, pdb, cm):
                    self.assertEqual(obj["metadata"]["namespace"], one(o, "Namespace")["metadata"]["name"])

    def test_the_drain_fits_the_grace_period_and_loops_match_the_cpu(self):
        for overlay in OVERLAYS:
            with self.subTest(overlay=overlay):
                o = self.objects[overlay]
                config, _ = self.config(o)
                pod = one(o, "Deployment")["spec"]["template"]["spec"]
                rtml = next(c for c in pod["containers"] if c["name"] == "rtml")
                pre_stop = rtml["lifecycle"]["preStop"]["sleep"]["seconds"]
                needed = pre_stop + config["http"]["drain_s"] + config["http"]["shutdown_grace_s"]
                self.assertLess(needed, pod["terminationGracePeriodSeconds"])
                self.assertGreater(config["http"]["drain_s"], 0)
                self.assertEqual(str(config["http"]["threads"]), str(rtml["resources"]["requests"]["cpu"]))
                self.assertNotIn("cpu", rtml["resources"].get("limits", {}))
                self.assertTrue(pod["securityContext"]["runAsNonRoot"])
                self.assertEqual(pod["securityContext"]["runAsUser"], 10001)  # the image's user

    def test_one_autoscaler_per_overlay_capped_at_the_partitions(self):
        dev, prod = self.objects["dev"], self.objects["production"]
        self.assertNotIn("ScaledObject", dev)
        hpa = one(dev, "HorizontalPodAutoscaler")
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], one(dev, "Deployment")["metadata"]["name"])
        self.assertLessEqual(hpa["spec"]["maxReplicas"], PARTITIONS)
        with open(os.path.join(K8S, "base", "hpa.yaml")) as f:
            self.assertEqual(yaml.safe_load(f)["spec"]["maxReplicas"], PARTITIONS)
        # production: KEDA's ScaledObject (which owns its HPA) and no other
        self.assertNotIn("HorizontalPodAutoscaler", prod)
        so = one(prod, "ScaledObject")
        self.assertEqual(so["spec"]["scaleTargetRef"]["name"], one(prod, "Deployment")["metadata"]["name"])
        self.assertEqual(so["spec"]["maxReplicaCount"], PARTITIONS)
        self.assertLessEqual(so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"])
        config, _ = self.config(prod)
        kafka = next(t for t in so["spec"]["triggers"] if t["type"] == "kafka")["metadata"]
        self.assertEqual(kafka["topic"], config["kafka"]["input_topic"])
        self.assertEqual(kafka["consumerGroup"], config["kafka"]["group_id"])
        self.assertEqual(kafka["bootstrapServers"], config["kafka"]["brokers"])
        self.assertGreater(int(kafka["lagThreshold"]), 0)
        self.assertIn("cpu", {t["type"] for t in so["spec"]["triggers"]})
        image = one(prod, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
        self.assertEqual(image, "registry.example.com/rtml:0.1.0")
        self.assertEqual(one(dev, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"],
                         "rtml:dev")


DEPLOY = os.path.join(REPO, "deploy")
COMPOSE = os.path.join(DEPLOY, "compose.yaml")
OFFICIAL = {"apache/kafka", "redis", "nginx", "prom/prometheus", "grafana/grafana"}
RTML_IMAGE = "rtml:dev"
RTML_PORT = 8080  # the image's (deploy/rtml.yaml), unless RTML_HTTP__PORT says otherwise


def load_compose():
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def read(path):
    with open(path) as f:
        return f.read()


def mounts(service):
    """(source, target, read_only) of a service's volumes, short syntax."""
    out = []
    for v in service.get("volumes", []):
        parts = v.split(":")
        out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return out


class ComposeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.compose = load_compose()
        cls.services = cls.compose["services"]
        cls.rtml = sorted(n for n, s in cls.services.items()
                          if s.get("image") == RTML_IMAGE and "serve" in s.get("command", ["serve"]))
        cls.dir = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def test_three_replicas_in_one_consumer_group(self):
        self.assertEqual(self.rtml, ["rtml-1", "rtml-2", "rtml-3"])
        groups = {self.services[n]["environment"]["RTML_KAFKA__GROUP_ID"] for n in self.rtml}
        self.assertEqual(groups, {"rtml"})
        for want in ("kafka", "redis", "lb", "prometheus", "grafana", "loadgen", "topics"):
            self.assertIn(want, self.services)

    def test_images_are_rtmls_or_official_and_pinned(self):
        builders = [s for s in self.services.values() if "build" in s]
        self.assertEqual(len(builders), 1, "rtml:dev is built by one service")
        build = builders[0]["build"]
        self.assertEqual(builders[0]["image"], RTML_IMAGE)
        self.assertTrue(os.path.exists(os.path.join(DEPLOY, build["context"], build["dockerfile"])))
        for name, s in self.services.items():
            image = s["image"]
            if image == RTML_IMAGE:
                continue
            repo, _, tag = image.partition(":")
            self.assertIn(repo, OFFICIAL, f"{name}: {image} is not an official image")
            self.assertTrue(tag and tag != "latest", f"{name}: {image} is not pinned")

    def test_mounted_files_exist_and_volumes_are_declared_and_used(self):
        declared = set(self.compose.get("volumes", {}))
        used = set()
        for name, s in self.services.items():
            for source, target, _ in mounts(s):
                if source.startswith("."):
                    self.assertTrue(os.path.exists(os.path.join(DEPLOY, source)), f"{name}: {source}")
                else:
                    self.assertIn(source, declared, f"{name}: volume {source} is not declared")
                    used.add(source)
        self.assertEqual(used, declared)

    def test_ports_are_unique_and_reach_what_listens(self):
        listens = {
            "lb": {int(p) for p in re.findall(r"listen (\d+);", read(os.path.join(DEPLOY, "compose", "nginx.conf")))},
            "prometheus": {9090}, "grafana": {3000},
            "kafka": {int(p) for p in re.findall(r":(\d+)", self.services["kafka"]["environment"]["KAFKA_LISTENERS"])},
        }
        host_ports = []
        for name, s in self.services.items():
            for p in s.get("ports", []):
                host, container = (int(x) for x in p.split(":"))
                host_ports.append(host)
                self.assertIn(container, listens.get(name, set()), f"{name} publishes {p}")
        self.assertEqual(len(host_ports), len(set(host_ports)), host_ports)
        for name in self.rtml:
            self.assertEqual(self.services[name].get("expose"), [str(RTML_PORT)])
            self.assertNotIn("RTML_HTTP__PORT", self.services[name]["environment"])

    def test_dependencies_exist(self):
        for name, s in self.services.items():
            deps = s.get("depends_on", [])
            for dep in (deps if isinstance(deps, list) else deps.keys()):
                self.assertIn(dep, self.services, f"{name} depends on {dep}")

    def test_the_balancer_prometheus_and_grafana_point_at_the_services(self):
        conf = read(os.path.join(DEPLOY, "compose", "nginx.conf"))
        self.assertEqual(sorted(re.findall(r"server ([\w-]+):(\d+)", conf)),
                         [(n, str(RTML_PORT)) for n in self.rtml])
        prom = yaml.safe_load(read(os.path.join(DEPLOY, "compose", "prometheus.yml")))
        targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
        self.assertEqual(sorted(targets), [f"{n}:{RTML_PORT}" for n in self.rtml])
        ds = yaml.safe_load(read(os.path.join(DEPLOY, "compose", "grafana", "datasources", "prometheus.yaml")))
        self.assertEqual(ds["datasources"][0]["url"], "http://prometheus:9090")
        # The dashboard provider reads the folder the dashboard is mounted in.
        grafana = {t: src for src, t, _ in mounts(self.services["grafana"])}
        provider = yaml.safe_load(read(os.path.join(DEPLOY, "compose", "grafana", "dashboards", "rtml.yaml")))
        folder = provider["providers"][0]["options"]["path"]
        dashboards = [t for t in grafana if t.startswith(folder + "/")]
        self.assertEqual(len(dashboards), 1)
        self.assertTrue(json_ok(os.path.join(DEPLOY, grafana[dashboards[0]])))

    def test_rtml_accepts_the_replicas_environment(self):
        env = {k: str(v) for k, v in self.services["rtml-1"]["environment"].items()}
        env["RTML_ADMIN_TOKEN"] = "x"  # the file's is ${...} for compose to fill
        r = subprocess.run([RTML, "probe", "--config", os.path.join(DEPLOY, "rtml.yaml"), "--timeout", "0.2"],
                           capture_output=True, text=True, timeout=30, env={**os.environ, **env})
        self.assertEqual(r.returncode, 1, r.stderr)  # loaded; nothing listens at rtml-1's port here
        self.assertIn("cannot reach", r.stderr)

    def test_topics_have_the_partitions_the_replicas_share(self):
        script = self.services["topics"]["command"][0]
        topics = dict(re.findall(r"([\w-]+):(\d+)", script.split(";")[0]))
        env = self.services["rtml-1"]["environment"]
        self.assertEqual(int(topics[env["RTML_KAFKA__INPUT_TOPIC"]]), PARTITIONS)
        self.assertIn(env["RTML_KAFKA__OUTPUT_TOPIC"], topics)
        self.assertIn(env["RTML_KAFKA__INPUT_TOPIC"] + "-dlq", topics)
        loadgen = self.services["loadgen"]["command"]
        self.assertEqual(loadgen[loadgen.index("--topic") + 1], env["RTML_KAFKA__INPUT_TOPIC"])
        self.assertEqual(loadgen[loadgen.index("--brokers") + 1], env["RTML_KAFKA__BROKERS"])

    @unittest.skipUnless(shutil.which("nginx"), "nginx is missing: run ./scripts/install-deps.sh")
    def test_nginx_loads_the_balancers_config(self):
        conf = read(os.path.join(DEPLOY, "compose", "nginx.conf"))
        # The replicas' names resolve in compose's network only: the same
        # config on loopback addresses, and a free port.
        conf = re.sub(r"server rtml-\d+:", "server 127.0.0.1:", conf)
        conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{free_port()};")
        d = os.path.join(self.dir.name, "nginx")
        os.makedirs(os.path.join(d, "logs"), exist_ok=True)
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(f"pid {d}/nginx.pid;\n" + conf)
        r = subprocess.run(["nginx", "-t", "-p", d, "-c", path, "-e", f"{d}/error.log"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    @unittest.skipUnless(shutil.which("promtool"), "promtool is missing: run ./scripts/install-deps.sh")
    def test_prometheus_loads_its_config_and_rules_as_mounted(self):
        d = os.path.join(self.dir.name, "prometheus")
        os.makedirs(d, exist_ok=True)
        config_target = None
        for source, target, _ in mounts(self.services["prometheus"]):
            if source.startswith("."):
                shutil.copy(os.path.join(DEPLOY, source), os.path.join(d, os.path.basename(target)))
                if target.endswith("prometheus.yml"):
                    config_target = os.path.basename(target)
        r = subprocess.run(["promtool", "check", "config", os.path.join(d, config_target)],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("rtml-alerts.yml", r.stdout + r.stderr)


def json_ok(path):
    import json
    with open(path) as f:
        return bool(json.load(f).get("panels"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
