"""Load generators for the ingest bench: raw HTTP requests, prepared before the run,
replayed over keep-alive connections in a closed loop, by ``wrk`` (with a Lua script that
replays them) or, without it, by Python processes of threads.

Requests come in slices, one per load-generator thread; ``write_slices`` stores them in the
length-prefixed files that ``WRK_SCRIPT`` reads.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.latency import percentile

WRK_SCRIPT = r"""
local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1] .. "." .. tid, "rb"))
  local data = f:read("*a")
  f:close()
  reqs = {}
  local pos = 1
  while pos <= #data do
    local nl = string.find(data, "\n", pos, true)
    local len = tonumber(string.sub(data, pos, nl - 1))
    reqs[#reqs + 1] = string.sub(data, nl + 1, nl + len)
    pos = nl + 1 + len
  end
  idx = 0
  wraps = 0
end

function request()
  idx = idx + 1
  if idx > #reqs then
    idx = 1
    wraps = wraps + 1
  end
  return reqs[idx]
end

function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do w = w + t:get("wraps") end
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,' ..
    '"max_us":%d,"wraps":%d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max, w))
end
"""


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    errors: int
    wrapped: bool
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by process group
    events: dict[str, int] = field(default_factory=dict)  # cart events by outcome
    updates: dict[str, int] = field(default_factory=dict)  # Kustom order updates by outcome
    backlog_s: float = 0.0  # how long the worker took to finish the queued jobs afterwards

    def cpu_ms_per_request(self, group: str) -> float:
        return 1000 * self.cpu.get(group, 0.0) / self.requests if self.requests else 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def write_slices(prefix: Path, slices: list[list[bytes]]) -> None:
    for index, raw_requests in enumerate(slices):
        with open(f"{prefix}.{index}", "wb") as f:
            for raw in raw_requests:
                f.write(f"{len(raw)}\n".encode())
                f.write(raw)


def ensure_wrk() -> str | None:
    """wrk on PATH; installed with apt-get (Debian, as root) when missing."""
    found = shutil.which("wrk")
    if found or not shutil.which("apt-get") or os.geteuid() != 0:
        return found
    print("wrk is missing: apt-get install -y wrk ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "install", "-y", "wrk"], ["apt-get", "update"]):
        subprocess.run(command, env=env, capture_output=True, timeout=300, check=False)
        if shutil.which("wrk"):
            return shutil.which("wrk")
    subprocess.run(
        ["apt-get", "install", "-y", "wrk"], env=env, capture_output=True, timeout=300, check=False
    )
    return shutil.which("wrk")


def run_wrk(
    wrk: str,
    url: str,
    prefix: Path,
    script: Path,
    *,
    threads: int,
    connections: int,
    seconds: float,
) -> LoadResult:
    out = subprocess.run(
        [
            wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "10s", "-s", str(script), url, "--", str(prefix),
        ],
        capture_output=True, text=True, timeout=seconds + 60, check=False,
    )  # fmt: skip
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    data = json.loads(line.removeprefix("WRKJSON "))
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
        errors=errors,
        wrapped=data["wraps"] > 0,
    )


def _python_worker(
    host: str, port: int, raw_requests: list[bytes], connections: int, seconds: float, out: Any
) -> None:
    import socket

    latencies: list[float] = []
    errors = 0
    wrapped = False
    lock = threading.Lock()
    position = [0]
    deadline = time.monotonic() + seconds

    def next_request() -> bytes:
        nonlocal wrapped
        with lock:
            index = position[0]
            position[0] += 1
        if index >= len(raw_requests):
            wrapped = True
        return raw_requests[index % len(raw_requests)]

    def connection_loop() -> None:
        nonlocal errors
        mine: list[float] = []
        sock = socket.create_connection((host, port))
        reader = sock.makefile("rb")
        while time.monotonic() < deadline:
            raw = next_request()
            started = time.perf_counter()
            sock.sendall(raw)
            status_line = reader.readline()
            if not status_line:  # the server closed the connection: open another
                sock.close()
                sock = socket.create_connection((host, port))
                reader = sock.makefile("rb")
                continue
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            reader.read(length)
            mine.append((time.perf_counter() - started) * 1000)
            if int(status_line.split()[1]) >= 400:
                errors += 1
        sock.close()
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    pool = [threading.Thread(target=connection_loop) for _ in range(connections)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put((latencies, time.monotonic() - started, errors, wrapped))


def run_python_load(
    url: str, slices: list[list[bytes]], *, connections: int, seconds: float
) -> LoadResult:
    import multiprocessing as mp
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    per_process = max(1, connections // len(slices))
    processes = [
        ctx.Process(
            target=_python_worker,
            args=(parts.hostname, parts.port, raw, per_process, seconds, queue),
        )
        for raw in slices
    ]
    for process in processes:
        process.start()
    results = [queue.get() for _ in processes]
    for process in processes:
        process.join()
    latencies = sorted(x for r in results for x in r[0])
    elapsed = max(r[1] for r in results)
    return LoadResult(
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
        mean_ms=statistics.fmean(latencies) if latencies else float("nan"),
        errors=sum(r[2] for r in results),
        wrapped=any(r[3] for r in results),
    )


__all__ = [
    "WRK_SCRIPT",
    "LoadResult",
    "ensure_wrk",
    "run_python_load",
    "run_wrk",
    "write_slices",
]
