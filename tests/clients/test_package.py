"""clients/python installs on its own: a wheel with py.typed that needs only requests, and
works in a fresh virtualenv where the service's packages are absent."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "python"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(PACKAGE)],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("kustom_app_client-*.whl")
    return built


def test_wheel_is_typed_and_depends_on_requests_only(wheel):
    with zipfile.ZipFile(wheel) as archive:
        files = set(archive.namelist())
        metadata = next(n for n in files if n.endswith(".dist-info/METADATA"))
        requires = [
            line.partition(":")[2].strip()
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    modules = {"__init__", "client", "errors", "signing", "flask", "django"}
    assert {f"kustom_app_client/{m}.py" for m in modules} <= files
    assert "kustom_app_client/py.typed" in files
    assert not any(f.startswith(("kustom_app/", "webhooks/", "workers/")) for f in files)
    runtime = [r for r in requires if "extra ==" not in r]
    assert len(runtime) == 1 and runtime[0].startswith("requests")


def test_installs_and_works_without_the_service(wheel, tmp_path):
    env = tmp_path / "venv"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=300)
    script = (
        "import importlib.util, kustom_app_client as k\n"
        "assert importlib.util.find_spec('kustom_app') is None\n"
        "h = k.sign('s', b'{}', 1767225600)\n"
        "k.verify_signature('s', b'{}', h, now=1767225600)\n"
        "print(h)\n"
    )
    done = subprocess.run(
        [str(python), "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=True,
    )
    assert done.stdout.startswith("t=1767225600,v1=")
