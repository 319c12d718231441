"""deploy/kubernetes/: valid for Kubernetes, and in step with the service it deploys.

Validated offline with kubernetes-validate (Kubernetes' own OpenAPI schemas, strict: an
unknown or misspelt field fails) against the oldest and a recent version the kit claims.
The rest compares the manifests with the code: the settings they set exist, the ConfigMap
passes the service's own checks, and ports, probes and commands are the Procfile's and the
settings'.
"""

from __future__ import annotations

import copy
import inspect
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml
from celery.bin import celery as celery_command_line
from celery.bin.worker import worker as celery_worker
from gunicorn.config import Config as GunicornConfig

from kustom_app.settings import Settings
from tests.deploy.kit import (
    KUBERNETES,
    ROOT,
    configmap,
    containers,
    deployments,
    manifests,
    procfile,
    real_settings,
    worker_metrics_port,
    yaml_documents,
)

# The oldest Kubernetes the kit is written for, and a recent one.
KUBERNETES_VERSIONS = ["1.29.0", "1.34.0"]
APP_SECRETS = {"KUSTOM_USERNAME", "KUSTOM_PASSWORD", "COMMERCE_WEBHOOK_SECRET", "CALLBACK_SECRET"}
NOT_IN_KUSTOMIZATION = {"secret.example.yaml", "flower.yaml"}


def resources() -> list[tuple[str, dict[str, Any]]]:
    return [(name, doc) for name, docs in manifests().items() for doc in docs]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    """What the container's environment holds: the ConfigMap's keys, then its own env
    (a secret reference reads as a placeholder, shaped user:password so that
    FLOWER_BASIC_AUTH's format check passes too)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"] == "kustom-app-config"
        env.update(configmap())
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", f"secret:{item['name'].lower()}")
    return env


def port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def probe_target(container: dict[str, Any], probe: str) -> tuple[str, int]:
    get = container[probe]["httpGet"]
    return get["path"], port_number(container, get["port"])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    ("name", "resource"),
    resources(),
    ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in resources()],
)
def test_every_manifest_validates_against_kubernetes(name, resource, version):
    kubernetes_validate.validate(resource, version, strict=True)


def test_the_validation_catches_a_misspelt_field():
    deployment = copy.deepcopy(deployments()["worker"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenesProbe"] = container.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_the_kustomization_lists_every_manifest_but_the_optional_ones():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert all((KUBERNETES / name).is_file() for name in listed)
    assert listed == set(manifests()) - NOT_IN_KUSTOMIZATION
    (image,) = kustomization["images"]
    for component, container in containers():
        name, _, tag = container["image"].partition(":")
        assert name == image["name"], component
        # Outside the kustomization (flower.yaml) the tag is written out, the same one.
        assert tag == ("" if component != "flower" else image["newTag"]), component


def test_every_variable_the_manifests_set_is_a_setting_the_service_reads():
    set_names = set(configmap())
    for _, container in containers():
        set_names |= {item["name"] for item in container.get("env", [])}
    unknown = set_names - real_settings()
    assert not unknown, f"not settings of the service: {sorted(unknown)}"
    assert "REDIS_URL" in set_names
    assert "WORKER_METRICS_PORT" in set_names


def test_the_configmap_passes_the_services_own_checks_in_production_mode():
    env = {**configmap(), **{name: f"test-{name.lower()}" for name in APP_SECRETS}}
    settings = Settings.from_env(env)
    assert settings.production
    assert settings.kustom_configured
    assert settings.public_base_url.startswith("https://")
    assert settings.log_format == "json"


def test_the_secret_example_holds_every_key_the_deployments_read():
    (secret,) = yaml_documents(KUBERNETES / "secret.example.yaml")
    keys = set(secret["stringData"])
    for component, container in containers():
        refs = {
            item["name"]: item["valueFrom"]["secretKeyRef"]
            for item in container.get("env", [])
            if "secretKeyRef" in item.get("valueFrom", {})
        }
        assert all(ref["name"] == secret["metadata"]["name"] for ref in refs.values())
        assert {name: ref["key"] for name, ref in refs.items()} == {n: n for n in refs}
        assert set(refs) <= keys, component
        # Every process reads the settings, and production mode requires CALLBACK_SECRET.
        assert set(refs) >= APP_SECRETS, component
        assert ("FLOWER_BASIC_AUTH" in refs) == (component == "flower"), component
    flower_auth = next(
        item
        for item in deployments()["flower"]["spec"]["template"]["spec"]["containers"][0]["env"]
        if item["name"] == "FLOWER_BASIC_AUTH"
    )
    assert flower_auth["valueFrom"]["secretKeyRef"]["optional"] is True


def test_each_container_runs_its_procfile_line_under_the_images_init():
    lines = procfile()
    for component, container in containers():
        assert "command" not in container, f"{component}: keep the image's tini entrypoint"
        assert container["args"] == ["kustom-process", component]
        assert component in lines


def test_the_web_listens_and_is_probed_on_its_port():
    (web,) = deployments()["web"]["spec"]["template"]["spec"]["containers"]
    port = Settings.from_env(env_of(web)).port
    assert "--bind 0.0.0.0:$PORT" in procfile()["web"]
    assert port_number(web, "http") == port == Settings.from_env({}).port
    assert probe_target(web, "readinessProbe") == ("/readyz", port)
    assert probe_target(web, "livenessProbe") == ("/healthz", port)
    assert probe_target(web, "startupProbe") == ("/healthz", port)
    annotations = deployments()["web"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    (service,) = [doc for doc in manifests()["web.yaml"] if doc["kind"] == "Service"]
    assert service["spec"]["selector"] == deployments()["web"]["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


@pytest.mark.parametrize(("component", "offset"), [("worker", 0), ("beat", 1)])
def test_worker_and_beat_are_probed_on_their_metrics_servers(component, offset):
    """The worker's /healthz is 200 only while it reaches its broker: readiness and
    liveness both use it. beat serves on the next port."""
    deployment = deployments()[component]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    port = worker_metrics_port(env_of(container)) + offset
    assert port == 9540 + offset  # the contract's default, as the ConfigMap leaves it
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert probe_target(container, probe) == ("/healthz", port), probe
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_worker_consumes_every_queue():
    line = procfile()["worker"]
    queues = re.search(r"-Q (\S+)", line)
    assert queues is not None
    assert set(queues.group(1).split(",")) == {"kustom.sync", "kustom.orders"}


def test_the_worker_pool_is_sized_to_the_pod_not_the_node(monkeypatch):
    """Celery's default pool is one child per CPU of the node; the manifest bounds it
    through the variable the `celery` command line reads for --concurrency."""
    (worker,) = deployments()["worker"]["spec"]["template"]["spec"]["containers"]
    concurrency = env_of(worker)["CELERY_WORKER_CONCURRENCY"]
    assert "--concurrency" not in procfile()["worker"]
    assert inspect.getsource(celery_command_line.main).count('auto_envvar_prefix="CELERY"') == 1
    monkeypatch.setenv("CELERY_WORKER_CONCURRENCY", concurrency)
    context = celery_worker.make_context(
        "worker", [], auto_envvar_prefix="CELERY_WORKER", resilient_parsing=True
    )
    assert context.params["concurrency"] == int(concurrency)
    assert 1 <= int(concurrency) <= 4


def test_exactly_one_beat():
    spec = deployments()["beat"]["spec"]
    assert spec["replicas"] == 1
    # Recreate: a rollout stops the old beat before starting the new one.
    assert spec["strategy"] == {"type": "Recreate"}


def test_flower_is_probed_from_inside_the_pod():
    """Without FLOWER_BASIC_AUTH Flower listens on 127.0.0.1 only, which the kubelet's
    HTTP probes cannot reach; an exec probe runs the image's healthcheck in the pod."""
    (flower,) = deployments()["flower"]["spec"]["template"]["spec"]["containers"]
    assert port_number(flower, "http") == Settings.from_env(env_of(flower)).flower_port
    for probe in ("readinessProbe", "livenessProbe"):
        assert flower[probe]["exec"]["command"] == ["kustom-healthcheck", "flower"]
    annotations = deployments()["flower"]["spec"]["template"]["metadata"].get("annotations", {})
    assert "prometheus.io/scrape" not in annotations


def test_the_worker_has_time_to_finish_its_running_tasks():
    """SIGTERM starts Celery's warm shutdown; a task may run up to its hard time limit."""
    spec = deployments()["worker"]["spec"]["template"]["spec"]
    settings = Settings.from_env(env_of(spec["containers"][0]))
    assert spec["terminationGracePeriodSeconds"] > settings.task_time_limit_seconds


def test_the_web_has_time_to_drain():
    spec = deployments()["web"]["spec"]["template"]["spec"]
    (web,) = spec["containers"]
    pre_stop = web["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # The Procfile's line does not set it: gunicorn's default graceful timeout applies.
    assert "--graceful-timeout" not in procfile()["web"]
    graceful = GunicornConfig().graceful_timeout
    assert spec["terminationGracePeriodSeconds"] > int(pre_stop[1]) + graceful


def test_every_container_is_unprivileged_and_bounded():
    dockerfile_user = re.findall(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M)
    for component, deployment in deployments().items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, component
        assert str(pod["securityContext"]["runAsUser"]) in dockerfile_user, component
        assert pod["automountServiceAccountToken"] is False, component
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, component
            assert security["allowPrivilegeEscalation"] is False, component
            assert security["capabilities"]["drop"] == ["ALL"], component
            resources = container["resources"]
            assert set(resources["requests"]) == {"cpu", "memory"}, component
            assert set(resources["limits"]) == {"cpu", "memory"}, component


def test_what_the_processes_write_lands_on_an_empty_dir():
    """The root filesystem is read-only: the metrics directory, beat's schedule and
    gunicorn's heartbeat files (in /tmp) must be on a writable volume."""
    for component, deployment in deployments().items():
        pod = deployment["spec"]["template"]["spec"]
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        (container,) = pod["containers"]
        mounted = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs]
        assert "/tmp" in mounted, component
        env = env_of(container)
        written = [Settings.from_env(env).metrics_dir]
        beat_default = re.search(r"\$\{BEAT_SCHEDULE_FILE:-([^}]*)\}", procfile()["beat"])
        assert beat_default is not None
        written.append(env.get("BEAT_SCHEDULE_FILE") or beat_default.group(1))
        for path in written:
            assert any(path.startswith(f"{m.rstrip('/')}/") for m in mounted), (component, path)
