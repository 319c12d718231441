"""docker-compose.yml passes every documented setting into the service containers, and
the Dockerfile builds an image that runs the Procfile from the locked dependencies.

Docker is not needed: the file is parsed as compose would read it (YAML with merge keys),
and the settings are taken from the tables of docs/configuration.md; the Dockerfile's
instructions are read and checked against the repository.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from kustom_app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ["web", "worker", "beat", "flower", "web2", "worker2", "worker3"]
# Fixed by the compose file: the redis service, and the ports it publishes.
FIXED = {"REDIS_URL": "redis://redis:6379/0", "PORT": "8000", "FLOWER_PORT": "5555"}
# Documented, but nothing in the containers reads it: `make run`'s shop playground.
NOT_IN_CONTAINERS = {"SHOP_PORT"}


def documented_settings() -> set[str]:
    section = (ROOT / "docs" / "configuration.md").read_text()
    names: set[str] = set()
    for row in re.findall(r"^\| (`[A-Z][A-Z0-9_]*`[^|]*)\|", section, flags=re.MULTILINE):
        names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", row))
    return names


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_configuration_tables_are_read():
    names = documented_settings()
    assert {"REDIS_URL", "CALLBACK_SECRET", "KUSTOM_KEY_PREFIX", "EVENTS_MAX_STREAMS"} <= names
    assert {"WEB_THREADS", "WEB_CONCURRENCY", "SHOP_PORT", "RECONCILE_BATCH"} <= names


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_documented_setting_reaches_the_service(compose, service):
    environment = compose["services"][service]["environment"]
    missing = documented_settings() - NOT_IN_CONTAINERS - set(environment)
    assert not missing, f"{service} does not pass {sorted(missing)}"
    for name in [
        "KUSTOM_MIN_ORDER_TOTAL",
        "KUSTOM_ALLOWED_CHANNELS",
        "KUSTOM_VALIDATION_RULES",
        "KUSTOM_VALIDATION_REJECT",
        "LOG_FORMAT",
        "KUSTOM_KEY_PREFIX",
        "WEB_CONCURRENCY",
        "WEB_THREADS",
        "EVENTS_MAX_STREAMS",
    ]:
        assert name in environment, name


@pytest.mark.parametrize("service", APP_SERVICES)
def test_an_unset_setting_stays_unset_in_the_container(compose, service):
    """A key without a value takes the shell's or .env's value, and is absent when neither
    has one; only the fixed values and PUBLIC_BASE_URL's default are filled in."""
    environment = compose["services"][service]["environment"]
    given = {name: value for name, value in environment.items() if value is not None}
    # Flower listens on the container's interfaces, published on the host's loopback only
    # (workers/flowerconfig.py).
    flower = {"FLOWER_ADDRESS": "0.0.0.0"} if service == "flower" else {}  # noqa: S104
    assert given == {
        **FIXED,
        **flower,
        "PUBLIC_BASE_URL": "${PUBLIC_BASE_URL:-http://localhost:8000}",
    }


def test_settings_given_empty_in_env_mean_unset(compose):
    """`NAME=` in .env reaches the container as an empty value: the service's default."""
    environment = compose["services"]["web"]["environment"]
    env = {name: "" for name, value in environment.items() if value is None}
    redis_url = FIXED["REDIS_URL"]
    expected = Settings(redis_url=redis_url, celery_broker_url=redis_url)
    assert Settings.from_env({**env, **FIXED}) == expected


def test_an_empty_metrics_directory_means_the_default():
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": ""}
    env.pop("KUSTOM_METRICS_PROCESS_DIR", None)  # this test process's own directory
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, webhooks.app; print(os.environ['PROMETHEUS_MULTIPROC_DIR'])",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The process's own directory (issue 15: one per process) in the default node directory.
    node, own = os.path.split(shown)
    assert node.endswith(f"kustom-app-metrics-{os.getuid()}")
    assert own.startswith("web-")


# --- the Dockerfile, read as docker would build it ------------------------------------------
# Docker is not available here: each test reads the Dockerfile's instructions and checks
# them against the repository (what the build context holds, the Procfile, the lock).

IMAGE_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
TEST_ONLY = ("playground", "tests", "bench", "harness")


@dataclass
class Stage:
    name: str
    parent: str | None
    instructions: list[tuple[str, str]]


def dockerfile_stages() -> dict[str, Stage]:
    """The Dockerfile's stages in order, each with its (INSTRUCTION, arguments) list."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            image, *rest = arguments.split()
            name = rest[1] if len(rest) == 2 and rest[0].upper() == "AS" else image
            current = Stage(name, image if image in stages else None, [])
            stages[name] = current
        else:
            assert current is not None, f"{instruction} before FROM"
            current.instructions.append((instruction, arguments.strip()))
    return stages


def chain(stage: str) -> list[tuple[str, str]]:
    """What a stage runs, its parents' instructions first."""
    stages = dockerfile_stages()
    found: list[tuple[str, str]] = []
    name: str | None = stage
    while name is not None:
        found = stages[name].instructions + found
        name = stages[name].parent
    return found


def copies(stage: str) -> list[tuple[list[str], str, list[str]]]:
    """(sources, destination, flags) of each COPY of the stage and its parents."""
    found = []
    for instruction, arguments in chain(stage):
        if instruction == "COPY":
            words = arguments.split()
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            found.append((paths[:-1], paths[-1], flags))
    return found


def exec_form(stage: str, instruction: str) -> list[str]:
    (arguments,) = [a for i, a in chain(stage) if i == instruction][-1:]
    if instruction == "HEALTHCHECK":
        arguments = arguments.split(" CMD ", 1)[1]
    form = json.loads(arguments)
    assert isinstance(form, list), f"{instruction} must be the exec form (no shell)"
    return form


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (relative) out of the build context: the last
    pattern matching it or a folder above it decides, `!` patterns taking it back."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


def in_image(stage: str, image_path: str) -> str | None:
    """The repository file a stage copies to ``image_path``, if it does."""
    workdir = next(a for i, a in chain(stage) if i == "WORKDIR")
    for sources, destination, _ in copies(stage):
        target = posixpath.normpath(posixpath.join(workdir, destination))
        for source in sources:
            if target == image_path:
                return source
            if f"{target}/{Path(source).name}" == image_path:
                return source
            if image_path.startswith(f"{target}/") and (ROOT / source).is_dir():
                return source
    return None


def test_the_dockerfile_is_read():
    stages = dockerfile_stages()
    assert list(stages) == ["base", "playground", "production"]
    assert stages["production"].parent == "base"
    assert any(i == "HEALTHCHECK" for i, _ in chain("production"))


def test_every_copy_source_exists_and_reaches_the_build_context():
    for stage in dockerfile_stages():
        for sources, _, flags in copies(stage):
            assert not any(flag.startswith("--from") for flag in flags)
            for source in sources:
                assert (ROOT / source).exists(), f"{stage}: COPY {source}: no such file"
                assert not dockerignored(source), f"{stage}: .dockerignore leaves out {source}"


def test_the_dockerignore_check_bites():
    assert dockerignored("tests")
    assert dockerignored("kustom_app/__pycache__/x.pyc")
    assert dockerignored("deploy/kubernetes/web.yaml")
    assert dockerignored(".env.example")
    assert not dockerignored("deploy/docker/kustom_process.py")
    assert not dockerignored("requirements.lock")


def test_the_production_image_is_the_default_and_holds_no_test_doubles():
    assert list(dockerfile_stages())[-1] == "production"
    for sources, _, _ in copies("production"):
        for source in sources:
            assert not source.startswith(TEST_ONLY), f"production copies {source}"
    assert any(s == ["playground"] for s, _, _ in copies("playground"))
    # compose builds the production image; the playground target is there for the doubles.
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in APP_SERVICES:
        assert compose["services"][service]["build"]["target"] == "production", service


def test_the_service_never_imports_the_doubles():
    for package in ("kustom_app", "webhooks", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text()
            assert not re.search(r"^\s*(from|import) playground\b", text, re.M), path


def test_the_healthcheck_command_is_in_the_image():
    command = exec_form("production", "HEALTHCHECK")
    assert command == ["kustom-healthcheck"]
    sources = [in_image("production", f"{d}/{command[0]}") for d in IMAGE_PATH]
    assert sources == ["deploy/docker/kustom_healthcheck.py", None, None]
    (flags,) = [f for s, _, f in copies("production") if s == [sources[0]]]
    assert "--chmod=0755" in flags


def test_tini_is_pid_one():
    runs = " ".join(a for i, a in chain("production") if i == "RUN")
    assert re.search(r"apt-get install [^&]*\btini\b", runs)
    assert exec_form("production", "ENTRYPOINT")[0] == "tini"


def test_the_command_runs_a_procfile_line_the_image_can_run():
    command = exec_form("production", "CMD")
    assert command == ["kustom-process", "web"]
    assert in_image("production", "/usr/local/bin/kustom-process") == (
        "deploy/docker/kustom_process.py"
    )
    workdir = next(a for i, a in chain("production") if i == "WORKDIR")
    assert in_image("production", f"{workdir}/Procfile") == "Procfile"
    # The web line's gunicorn reads ./gunicorn.conf.py (the metrics directory, child_exit).
    assert in_image("production", f"{workdir}/gunicorn.conf.py") == "gunicorn.conf.py"
    scripts = {ep.name: ep for ep in metadata.entry_points(group="console_scripts")}
    locked = lock_pins()
    modules: set[str] = set()
    for name, line in procfile_lines().items():
        program = line.split()[0]
        if program not in ("python", "python3"):
            assert program in scripts, f"{name}: {program} is no installed program"
            distribution = scripts[program].dist
            assert distribution is not None
            # A dependency's program is locked; the project's own comes with the project.
            assert canonical(distribution.name) in {*locked, "kustom-app"}, (name, program)
        for module in re.findall(r"(?:-A |-m |')([a-z_]+)(?:\.[a-z_]+|\s)", line):
            if not (ROOT / module / "__init__.py").is_file():
                continue  # a dependency's module (python -m celery), not the repository's
            assert in_image("production", f"{workdir}/{module}") == module, (name, module)
            modules.add(module)
    assert {"webhooks", "workers"} <= modules


def test_compose_runs_each_procfile_line_the_same_way():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    lines = procfile_lines()
    for service in APP_SERVICES:
        command = compose["services"][service]["command"]
        assert command[0] == "kustom-process", service
        assert command[1] in lines and service.startswith(command[1]), service


def procfile_lines() -> dict[str, str]:
    lines = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep:
            lines[name.strip()] = command.strip()
    return lines


# --- requirements.lock --------------------------------------------------------------------


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins() -> dict[str, tuple[str, list[str]]]:
    """The lock's pins: name → (version, hashes)."""
    text = re.sub(r"\\\n", " ", (ROOT / "requirements.lock").read_text())
    pins: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line)
        assert match, f"not a pin: {line}"
        pins[canonical(match.group(1))] = (match.group(2), re.findall(r"--hash=(\S+)", line))
    return pins


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_runtime_dependency_is_locked_within_its_bounds():
    pins = lock_pins()
    wanted = [Requirement(r) for r in pyproject()["project"]["dependencies"]]
    # The build backend too: the image builds the project without a download of its own.
    wanted += [Requirement(r) for r in pyproject()["build-system"]["requires"]]
    for requirement in wanted:
        name = canonical(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock"
        assert Version(pins[name][0]) in requirement.specifier, (requirement, pins[name][0])
        for extra in requirement.extras:
            for needed in metadata.requires(requirement.name) or []:
                needed_requirement = Requirement(needed)
                marker = needed_requirement.marker
                if marker is not None and marker.evaluate({"extra": extra}):
                    assert canonical(needed_requirement.name) in pins, (requirement, needed)


def test_every_pin_has_hashes_and_nothing_dev_is_locked():
    pins = lock_pins()
    assert all(hashes for _, hashes in pins.values())
    assert all(h.startswith("sha256:") for _, hashes in pins.values() for h in hashes)
    dev = {
        canonical(Requirement(r).name)
        for r in pyproject()["project"]["optional-dependencies"]["dev"]
    }
    runtime = {canonical(Requirement(r).name) for r in pyproject()["project"]["dependencies"]}
    assert not (dev - runtime) & set(pins)


def test_the_image_installs_exactly_the_lock():
    runs = [a for i, a in chain("production") if i == "RUN"]
    assert any("pip install --require-hashes -r requirements.lock" in run for run in runs)
    # The project itself: no dependency and no build requirement beyond the lock.
    project = [run for run in runs if re.search(r"pip install [^&]*\s\.(\s|$)", run)]
    assert project and all("--no-deps" in r and "--no-build-isolation" in r for r in project)


def test_every_service_is_restarted_when_it_dies(compose):
    # docs/operations.md "Restart policies": a process that exits (a crash, a lost broker
    # at start) comes back; `docker compose stop` still stops it.
    services = compose["services"]
    assert {name: s.get("restart") for name, s in services.items()} == dict.fromkeys(
        services, "unless-stopped"
    )
