"""The copyable snippets in examples/signing/ agree with every known-answer vector.

Each snippet, run as a program on schemas/signing-vectors.json, prints the header it makes
for every sign vector and the reason (or null) it finds for every verify vector. Python
and Node always run (the dev setup has both); PHP and Go run where ``php`` / ``go`` are on
PATH and are skipped, saying so, elsewhere (scripts/setup does not install them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.signing.vectors import ROOT, SIGN, VECTORS_PATH, VERIFY

EXAMPLES = ROOT / "examples" / "signing"

SNIPPETS = {
    "python": ([sys.executable, str(EXAMPLES / "python.py")], None),
    "node": (["node", str(EXAMPLES / "node.js")], "node is not on PATH"),
    "php": (
        ["php", str(EXAMPLES / "sign.php")],
        "php is not installed (optional: apt-get install php-cli)",
    ),
    "go": (
        ["go", "run", str(EXAMPLES / "sign.go")],
        "go is not installed (optional: apt-get install golang-go)",
    ),
}


def run_snippet(language: str) -> dict[str, dict[str, str | None]]:
    command, missing = SNIPPETS[language]
    if missing and shutil.which(command[0]) is None:
        pytest.skip(missing)
    # Go compiles first: generous on a loaded 2-core machine.
    done = subprocess.run(
        [*command, str(VECTORS_PATH)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=240,
        cwd=Path(ROOT),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, dict[str, str | None]] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("language", list(SNIPPETS))
def test_snippet_agrees_with_every_vector(language):
    result = run_snippet(language)
    assert result["sign"] == {v["name"]: v["header"] for v in SIGN}
    assert result["verify"] == {v["name"]: v.get("reason") for v in VERIFY}
