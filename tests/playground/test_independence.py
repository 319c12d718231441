"""The doubles share no code with the service they stand in front of.

A double that imports kustom_app (or webhooks, workers) would judge the service by the
service's own arithmetic and signatures, and share its bugs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PLAYGROUND = Path(__file__).resolve().parents[2] / "playground"
SERVICE_PACKAGES = {"kustom_app", "webhooks", "workers"}


def _imported_packages(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_playground_module_imports_the_service() -> None:
    sources = sorted(PLAYGROUND.rglob("*.py"))
    assert len(sources) > 10  # the walk found the package
    offenders = {
        str(path.relative_to(PLAYGROUND)): sorted(_imported_packages(path) & SERVICE_PACKAGES)
        for path in sources
        if _imported_packages(path) & SERVICE_PACKAGES
    }
    assert offenders == {}


def test_loading_the_doubles_loads_none_of_the_service() -> None:
    probe = (
        "import sys\n"
        "import playground.commerce, playground.kustom, playground.kustom.__main__\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:])))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe, *sorted(SERVICE_PACKAGES)],
        capture_output=True,
        text=True,
        check=True,
        cwd=PLAYGROUND.parent,
        timeout=60,
    )
    assert loaded.stdout.strip() == "[]"
