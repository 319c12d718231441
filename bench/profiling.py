"""py-spy on live processes of the node, summarised as inclusive time per function."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from bench.figures import markdown_table


class Profiler:
    """``py-spy record --gil`` (raw collapsed stacks of threads holding the GIL: CPU time,
    not waiting) on some pids.

    Used around an extra, unreported run: sampling costs a little CPU. Without py-spy on
    PATH (``pip install py-spy``) it does nothing and says so.
    """

    def __init__(self, pids: Sequence[int], out_dir: Path, *, rate: int = 250) -> None:
        self.binary = shutil.which("py-spy") or shutil.which(
            "py-spy", path=str(Path(sys.executable).parent)
        )
        self.pids = list(pids)
        self.out_dir = out_dir
        self.rate = rate
        self.processes: list[subprocess.Popen[bytes]] = []
        self.files: list[Path] = []

    @property
    def available(self) -> bool:
        return self.binary is not None

    def start(self, duration: float) -> None:
        if not self.binary:
            print("(py-spy not installed: no profile; pip install py-spy)")
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for pid in self.pids:
            out = self.out_dir / f"py-spy-{pid}.txt"
            self.files.append(out)
            self.processes.append(
                subprocess.Popen(
                    [
                        self.binary, "record", "--pid", str(pid), "--rate", str(self.rate),
                        "--duration", str(max(1, round(duration))), "--format", "raw",
                        "--nonblocking", "--gil", "--output", str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip

    def stop(self, timeout: float = 30.0) -> None:
        for process in self.processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGINT)
                process.wait(10)

    def keep(self, folder: Path) -> None:
        """Copy the raw collapsed stacks to ``folder`` (for flame graphs: one line per stack)."""
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for path in self.files:
            if path.exists():
                shutil.copy(path, folder / path.name)
        print(f"(raw py-spy stacks kept in {folder})")

    def summary(self, top: int = 25) -> list[tuple[str, float, float]]:
        """``(function, inclusive %, self %)`` over every sample of every pid, by inclusive."""
        inclusive: dict[str, int] = {}
        own: dict[str, int] = {}
        total = 0
        for path in self.files:
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                stack, _, count_text = line.rpartition(" ")
                if not stack or not count_text.isdigit():
                    continue
                count = int(count_text)
                total += count
                frames = [_frame_name(frame) for frame in stack.split(";")]
                for name in set(frames):
                    inclusive[name] = inclusive.get(name, 0) + count
                own[frames[-1]] = own.get(frames[-1], 0) + count
        if not total:
            return []
        ranked = sorted(inclusive.items(), key=lambda item: -item[1])[:top]
        return [(name, 100 * n / total, 100 * own.get(name, 0) / total) for name, n in ranked]


def _frame_name(frame: str) -> str:
    """``"function (path/to/module.py:123)"`` → ``"function (module.py)"``."""
    name, _, where = frame.partition(" (")
    file_name = where.rstrip(")").rpartition(":")[0]
    parts = Path(file_name).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else file_name
    return f"{name} ({short})"


def profile_table(rows: Sequence[tuple[str, float, float]]) -> str:
    return markdown_table(
        ["function (file)", "inclusive %", "self %"],
        [(name, f"{inc:.1f}", f"{own:.1f}") for name, inc, own in rows],
    )


__all__ = [
    "Profiler",
    "profile_table",
]
