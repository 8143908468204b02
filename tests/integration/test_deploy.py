"""The Kubernetes manifests (deploy/kubernetes: a base, a keda component and
two overlays, rendered by kustomize from scripts/install-tools.sh) checked
offline.

What must hold: every base file and every overlay's rendering passes
kubernetes-validate --strict against the Kubernetes API schemas (and a
mistyped field fails it: the check is live); rtml loads the config the
ConfigMap carries; and what the schemas cannot see holds across objects:
the probes, Service, ServiceMonitor, PodDisruptionBudget and autoscalers
name what exists (ports, labels, the Deployment), the grace period covers
preStop + drain + shutdown grace, the event loops match the CPU request,
the autoscalers stop at the partition count, KEDA's trigger reads the
topic and group the config consumes, and no overlay has two autoscalers.
"""
import os
import subprocess
import tempfile
import unittest

import yaml

from harness import REPO, RTML

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


if __name__ == "__main__":
    unittest.main(verbosity=2)
