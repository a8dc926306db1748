"""The Kubernetes chart (deploy/callintent) renders, validates, and matches what the service does.

Rendering is Helm's own template engine (helm-python-sdk: Helm's Go SDK through ctypes, no helm
binary), validation the Kubernetes OpenAPI schemas bundled in kubernetes-validate (strict: unknown
fields are errors), both offline. The numbers the chart derives (drain time, threads, HPA target)
are checked against the service's own config loader and constants, so a change on either side
that breaks the deployment fails here.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

# Installed by the dev extra (pyproject); a missing one is a broken install, not a reason to skip.
import helm_python as helm
import kubernetes_validate

from serving.config import DEFAULT_CONFIG_PATH, ENV_OVERRIDES, ServeConfig, load_serve_config

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "deploy" / "callintent"
#: The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest schemas bundled.
KUBE_VERSIONS = ("1.25.0", "1.37.0")
#: Measured CPU per live call: CPU seconds per second of call audio (BENCHMARKS.md "Streaming vs offline ASR").
CPU_PER_CALL = 0.25
#: Peak RSS measured with up to 6 live calls (BENCHMARKS.md "Load and shedding"), MiB.
PEAK_RSS_MIB = 498
#: What a deployment must supply (the chart refuses to render without them).
REQUIRED = {"registry": {"url": "s3://acme-models/callintent"},
            "callLog": {"urlSecret": {"name": "callintent-db"}},
            "apiKeys": {"secretName": "callintent-api-keys"}}


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object the chart renders with REQUIRED + ``values``, as dicts."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(merge(REQUIRED, values or {}), name="ci", namespace="calls")
    return [doc for name, text in sorted(manifests.items()) if name.endswith((".yaml", ".yml"))
            for doc in yaml.safe_load_all(text) if doc]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def env(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(objects)["env"]}


def served_config(objects: list[dict[str, Any]]) -> ServeConfig:
    """The config a pod resolves: the image's serve.yaml + the chart's $CALLINTENT_SERVE_OVERRIDES."""
    return load_serve_config(DEFAULT_CONFIG_PATH, environ={ENV_OVERRIDES: env(objects)[ENV_OVERRIDES]["value"]})


def prestop_max_wait(objects: list[dict[str, Any]]) -> float:
    command = container(objects)["lifecycle"]["preStop"]["exec"]["command"]
    return float(command[command.index("--max-wait") + 1])


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    return render({"ingress": {"enabled": True}})


def test_chart_lints_clean() -> None:
    report = helm.lint(CHART, REQUIRED, strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schema(objects: list[dict[str, Any]], kube: str) -> None:
    assert {o["kind"] for o in objects} == {"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress",
                                            "PodDisruptionBudget", "Service", "ServiceAccount"}
    for obj in objects:
        kubernetes_validate.validate(obj, kube, strict=True)


def test_the_validator_rejects_a_broken_object(objects: list[dict[str, Any]]) -> None:
    # The check above can fail: a typo'd field and a wrong type are schema errors.
    deployment = json.loads(json.dumps(one(objects, "Deployment")))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)
    service = json.loads(json.dumps(one(objects, "Service")))
    service["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, KUBE_VERSIONS[-1], strict=True)


def test_probes_readiness_is_model_loaded_liveness_is_livez(objects: list[dict[str, Any]]) -> None:
    c = container(objects)
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/livez"
    assert {"name": "http", "containerPort": 3000, "protocol": "TCP"} in c["ports"]
    assert c["command"][-4:] == ["--host", "0.0.0.0", "--port", "3000"]


def test_grace_period_covers_the_drain_the_service_config_implies(objects: list[dict[str, Any]]) -> None:
    config = served_config(objects)
    grace = one(objects, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    wait = prestop_max_wait(objects)
    # preStop lets open calls end by themselves: the longest call plus its idle timeout ...
    assert wait >= config.limits.max_audio_seconds + config.limits.idle_timeout_seconds
    # ... then SIGTERM ends the rest with their final event, then the call log writes its queue.
    assert grace >= wait + config.limits.drain_seconds + config.call_log.drain_seconds
    assert (wait, grace) == (150, 185)


def test_grace_period_follows_longer_calls() -> None:
    objects = render({"config": {"limits.max_audio_seconds": 1800}})
    config = served_config(objects)
    assert config.limits.max_audio_seconds == 1800
    grace = one(objects, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert prestop_max_wait(objects) == 1830
    assert grace >= 1830 + config.limits.drain_seconds + config.call_log.drain_seconds


def test_chart_refuses_to_guess_the_drain() -> None:
    with pytest.raises(helm.HelmError, match="limits.max_audio_seconds must be set"):
        render({"config": {"limits.max_audio_seconds": None}})


def test_hpa_targets_live_sessions_with_cpu_fallback(objects: list[dict[str, Any]]) -> None:
    from serving.metrics import service_metrics

    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": one(objects, "Deployment")["metadata"]["name"]}
    pods = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    cpu = [m["resource"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"]
    # The metric the service exports for open live calls (summed over its workers).
    assert pods[0]["metric"]["name"] == service_metrics().sessions_active._name == "callintent_live_sessions_active"
    target = float(pods[0]["target"]["averageValue"])
    assert 0 < target <= served_config(objects).limits.max_live_sessions
    assert cpu == [{"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 75}}]
    assert "replicas" not in one(objects, "Deployment")["spec"]  # the HPA owns the count


def test_hpa_target_above_the_session_limit_is_refused() -> None:
    with pytest.raises(helm.HelmError, match="must not exceed config limits.max_live_sessions"):
        render({"autoscaling": {"targetLiveSessionsPerPod": 12}})


def test_pdb_and_rolling_update_keep_calls_served(objects: list[dict[str, Any]]) -> None:
    pdb = one(objects, "PodDisruptionBudget")
    selector = one(objects, "Deployment")["spec"]["selector"]
    assert pdb["spec"]["selector"] == selector and pdb["spec"]["maxUnavailable"] == 1
    assert one(objects, "Deployment")["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_secrets_are_referenced_not_inlined(objects: list[dict[str, Any]]) -> None:
    assert not [o for o in objects if o["kind"] == "Secret"]
    variables = env(objects)
    assert variables["CALLINTENT_CALL_LOG_URL"]["valueFrom"] == {"secretKeyRef": {"name": "callintent-db", "key": "url"}}
    keys_file = variables["CALLINTENT_API_KEYS_FILE"]["value"]
    mounts = {m["name"]: m for m in container(objects)["volumeMounts"]}
    volumes = {v["name"]: v for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert keys_file.startswith(mounts["api-keys"]["mountPath"] + "/")
    assert "subPath" not in mounts["api-keys"]  # so a rotated Secret reaches the file
    assert volumes["api-keys"]["secret"]["secretName"] == "callintent-api-keys"
    # Nothing secret-looking is a literal value; the registry URL and overrides are not secrets.
    for name, item in variables.items():
        if "value" in item:
            assert not re.search(r"KEY$|SECRET|PASSWORD|TOKEN|CALL_LOG_URL", name), name
            assert not re.search(r"://[^/\s]*:[^@/\s]*@", item["value"]), f"{name} carries credentials"
    with_creds = render({"registry": {"credentialsSecret": "callintent-aws", "endpointUrl": "http://minio:9000"}})
    assert container(with_creds)["envFrom"] == [{"secretRef": {"name": "callintent-aws"}}]
    assert env(with_creds)["AWS_ENDPOINT_URL"]["value"] == "http://minio:9000"
    assert env(objects)["CALLINTENT_REGISTRY"]["value"] == "s3://acme-models/callintent"


def test_required_values_are_required() -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError, match="registry.url is required"):
        chart.render({}, name="ci")
    with pytest.raises(helm.HelmError, match="callLog.urlSecret.name is required"):
        render({"callLog": {"urlSecret": {"name": ""}}})


def test_ingress_holds_30_minute_calls_without_affinity(objects: list[dict[str, Any]]) -> None:
    annotations = one(objects, "Ingress")["metadata"]["annotations"]
    for key in ("nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"):
        assert int(annotations[key]) >= 1800
    assert not [k for k in annotations if "affinity" in k]
    assert one(objects, "Service")["spec"]["sessionAffinity"] == "None"
    with pytest.raises(helm.HelmError, match="at least 1800"):
        render({"ingress": {"enabled": True, "timeoutSeconds": 600}})


def test_resources_sized_from_measured_per_call_cpu(objects: list[dict[str, Any]]) -> None:
    config = served_config(objects)
    requests = container(objects)["resources"]["requests"]
    cpu = float(requests["cpu"])
    assert cpu >= config.limits.max_live_sessions * CPU_PER_CALL
    assert requests["memory"].endswith("Gi") and float(requests["memory"][:-2]) * 1024 >= PEAK_RSS_MIB
    # Threads pinned to the request (os.cpu_count() in a pod is the node's cores).
    assert 0 < config.asr.cpu_threads * config.decode_workers <= cpu
    assert 0 < config.model_threads <= cpu


def test_service_monitor_scrapes_metrics() -> None:
    objects = render({"metrics": {"serviceMonitor": {"enabled": True}}})
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"][0]["port"] == "http" and monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["selector"]["matchLabels"] == one(objects, "Service")["spec"]["selector"]


# -- the preStop hook ---------------------------------------------------------------------------


def load_prestop() -> Any:
    spec = importlib.util.spec_from_file_location("prestop", CHART / "files" / "prestop.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def metrics_server() -> Iterator[tuple[str, list[float]]]:
    """A /metrics endpoint that reports the live calls in ``calls[0]`` (popped once per scrape while more remain)."""
    calls: list[float] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            value = calls.pop(0) if len(calls) > 1 else calls[0]
            body = ("# HELP callintent_live_sessions_active Live calls being processed\n"
                    "# TYPE callintent_live_sessions_active gauge\n"
                    f"callintent_live_sessions_active {value}\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics", calls
    finally:
        server.shutdown()
        server.server_close()


def test_prestop_waits_until_calls_end(metrics_server: tuple[str, list[float]]) -> None:
    import time

    url, calls = metrics_server
    calls.extend([2, 2, 1, 0])
    start = time.monotonic()
    assert load_prestop().wait_for_calls(url, min_wait=0, max_wait=10, poll=0.05) == "no calls"
    assert time.monotonic() - start < 2 and calls == [0]


def test_prestop_gives_up_at_max_wait(metrics_server: tuple[str, list[float]]) -> None:
    import time

    url, calls = metrics_server
    calls.append(3)
    start = time.monotonic()
    assert load_prestop().wait_for_calls(url, min_wait=0, max_wait=0.5, poll=0.05) == "max wait"
    assert 0.5 <= time.monotonic() - start < 1.5


def test_prestop_waits_min_wait_even_when_idle(metrics_server: tuple[str, list[float]]) -> None:
    import time

    url, calls = metrics_server
    calls.append(0)
    start = time.monotonic()
    assert load_prestop().wait_for_calls(url, min_wait=0.3, max_wait=5, poll=0.05) == "no calls"
    assert time.monotonic() - start >= 0.3


def test_prestop_stops_when_the_server_is_gone() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/metrics"
    assert load_prestop().wait_for_calls(url, min_wait=0, max_wait=10, poll=0.01, timeout=0.2) == "server gone"


# -- the GPU serving path -----------------------------------------------------------------------


def test_gpu_config_loads_and_differs_only_in_gpu_sizing() -> None:
    import dataclasses

    gpu = load_serve_config(REPO / "serving" / "configs" / "serve-gpu.yaml", environ={})
    cpu = load_serve_config(DEFAULT_CONFIG_PATH, environ={})
    assert (gpu.asr.device, gpu.asr.compute_type) == ("cuda", "float16")
    assert gpu.live_batch_size > cpu.live_batch_size and gpu.limits.max_live_sessions > cpu.limits.max_live_sessions
    changed = {f.name for f in dataclasses.fields(ServeConfig) if getattr(gpu, f.name) != getattr(cpu, f.name)}
    assert changed <= {"asr", "decode_workers", "live_batch_size", "model_threads", "limits"}
    # Only the device and precision change in the ASR (a partial `asr:` block must not reset the rest).
    assert dataclasses.replace(gpu.asr, device=cpu.asr.device, compute_type=cpu.asr.compute_type) == cpu.asr
    assert dataclasses.replace(gpu.limits, max_live_sessions=cpu.limits.max_live_sessions,
                               max_inflight_audio_requests=cpu.limits.max_inflight_audio_requests) == cpu.limits


def test_gpu_image_is_cuda12_cudnn9_and_serves_the_gpu_config() -> None:
    dockerfile = (REPO / "Dockerfile.gpu").read_text(encoding="utf-8")
    base = re.search(r"^FROM (\S+)", dockerfile, re.M)
    assert base and re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-cudnn9?-runtime-ubuntu\d\d\.04", base.group(1))
    config = re.search(r"CALLINTENT_SERVE_CONFIG=/app/(\S+)", dockerfile)
    assert config and (REPO / config.group(1)).is_file()
    assert 'CMD ["callintent", "serve", "--host", "0.0.0.0", "--port", "3000"]' in dockerfile
