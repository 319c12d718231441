"""A line of the Procfile run as is (with bash, the venv on PATH), in a subprocess: for
the processes the tests start exactly as production does (beat, Flower)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from harness.processes import LoggedProcess, procfile_command

__all__ = ["ProcfileProcess", "procfile_command"]


class ProcfileProcess(LoggedProcess):
    """The Procfile's ``name`` line with exactly ``env`` as its environment (plus the venv
    on PATH): nothing of this process's environment leaks in."""

    def __init__(self, name: str, env: Mapping[str, str], log_path: Path | None = None) -> None:
        venv_bin = str(Path(sys.executable).parent)
        path = env.get("PATH", os.environ.get("PATH", ""))
        super().__init__(
            name,
            {**env, "PATH": f"{venv_bin}:{path}"},
            log_path or Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1]),
        )

    def start(self, ready: Callable[[], bool], timeout: float = 30.0) -> ProcfileProcess:
        self.spawn(["bash", "-c", f"exec {procfile_command(self.name)}"], ready, timeout)
        return self
