"""Helpers shared by the benchmarks: a real Redis, a served app, timing and reporting."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from harness.celery_worker import CeleryWorker
from harness.gunicorn import Gunicorn, procfile_web_command
from harness.redis_server import RedisServer, free_port
from harness.waiting import wait_until
from playground.server import ServerThread

RESULTS_DIR = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A private, throw-away redis-server (no persistence: we measure latency, not AOF)."""
    with RedisServer(appendonly=False) as server:
        yield server


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """Serve a WSGI app on 127.0.0.1 from a thread; yields its base URL."""
    with ServerThread(app) as server:
        yield server.url


def quiet_logs(level: int = logging.WARNING) -> None:
    """Per-request INFO logs would measure the terminal, not the code."""
    logging.basicConfig(level=level, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(level)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(pct / 100 * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Row:
    name: str
    samples_ms: list[float] = field(repr=False)
    statuses: dict[int, int]

    @property
    def p50(self) -> float:
        return percentile(sorted(self.samples_ms), 50)

    @property
    def p99(self) -> float:
        return percentile(sorted(self.samples_ms), 99)

    @property
    def mean(self) -> float:
        return sum(self.samples_ms) / len(self.samples_ms)


def time_calls(
    call: Callable[[], requests.Response],
    calls: int,
    *,
    warmup: int = 100,
    expect: int | None = None,
) -> tuple[list[float], dict[int, int]]:
    """Run ``call`` ``warmup`` + ``calls`` times; the latencies (ms) of the last ``calls``."""
    for _ in range(warmup):
        call()
    samples: list[float] = []
    statuses: dict[int, int] = {}
    for _ in range(calls):
        started = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - started) * 1000)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    if expect is not None and set(statuses) != {expect}:
        raise RuntimeError(f"expected only {expect} answers, got {statuses}")
    return samples, statuses


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def report(
    name: str,
    rows: Sequence[Row],
    *,
    baseline: str | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print a Markdown table of ``rows`` and append the run to bench/results/<name>.json.

    With ``baseline`` (a row name) each row also shows its p50/p99 as a multiple of it.
    """
    base = next((row for row in rows if row.name == baseline), None)
    header = "| endpoint | calls | p50 ms | p99 ms | mean ms |"
    rule = "|---|---:|---:|---:|---:|"
    if base is not None:
        header += " p50 vs bare | p99 vs bare |"
        rule += "---:|---:|"
    print(header)
    print(rule)
    results = []
    for row in rows:
        line = (
            f"| {row.name} | {len(row.samples_ms)} | {row.p50:.2f} | {row.p99:.2f} "
            f"| {row.mean:.2f} |"
        )
        result: dict[str, Any] = {
            "name": row.name,
            "calls": len(row.samples_ms),
            "p50_ms": round(row.p50, 3),
            "p99_ms": round(row.p99, 3),
            "mean_ms": round(row.mean, 3),
            "statuses": {str(k): v for k, v in row.statuses.items()},
        }
        if base is not None:
            result["p50_ratio"] = round(row.p50 / base.p50, 2)
            result["p99_ratio"] = round(row.p99 / base.p99, 2)
            line += f" {result['p50_ratio']:.2f} | {result['p99_ratio']:.2f} |"
        print(line)
        results.append(result)
    return _append_run(name, {**(meta or {}), "rows": results})


# ---------------------------------------------------------------------------------------------
# The machine, and figures reported as ratios to a baseline of the same run
# ---------------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """Cores, CPU model (from /proc/cpuinfo), Python and the date: printed with every table."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": model or platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_line(info: Mapping[str, Any] | None = None) -> str:
    info = info or machine_info()
    return f"Machine: {info['cores']} cores, {info['cpu']}; Python {info['python']}; {info['date']}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A Markdown table; ``align`` is one letter per column (l/r), default l then r."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    lines = ["| " + " | ".join(headers) + " |", rule]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Figure:
    """One headline number of a benchmark, beside its same-run baseline and its target.

    ``ratio`` is how the figure compares with the baseline in the direction the target is
    written in (e.g. measured req/s ÷ bare req/s; Kustom calls ÷ renders).
    """

    figure: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None
    note: str = ""

    def cells(self, bench: str | None = None) -> list[str]:
        cells = [] if bench is None else [bench]
        verdict = "" if self.ok is None else ("yes" if self.ok else "**no**")
        cells += [
            self.figure,
            _fmt(self.value, self.unit),
            "" if self.baseline is None else _fmt(self.baseline, self.unit),
            "" if self.ratio is None else f"{self.ratio:.2f}",
            self.target,
            verdict,
        ]
        return cells

    def as_json(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "value": round(self.value, 3),
            "unit": self.unit,
            "baseline": None if self.baseline is None else round(self.baseline, 3),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": self.target,
            "ok": self.ok,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Figure:
        return cls(
            figure=data["figure"],
            value=data["value"],
            unit=data.get("unit", ""),
            baseline=data.get("baseline"),
            ratio=data.get("ratio"),
            target=data.get("target", ""),
            ok=data.get("ok"),
            note=data.get("note", ""),
        )


FIGURE_HEADERS = ["figure", "value", "baseline (same run)", "ratio", "target", "met"]


def _fmt(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "n/a"
    if unit in ("req/s", "carts/s", "calls/s"):
        return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:.2f} {unit}".strip() if value != int(value) else f"{value:.0f} {unit}".strip()


def figures_table(figures: Sequence[Figure], *, bench: str | None = None) -> str:
    return labelled_figures_table([(bench, figure) for figure in figures])


def labelled_figures_table(figures: Sequence[tuple[str | None, Figure]]) -> str:
    """One table of figures, each with the name of its bench (or None: no bench column);
    a note column when any figure has a note."""
    with_bench = any(bench is not None for bench, _ in figures)
    with_note = any(figure.note for _, figure in figures)
    headers = (["bench"] if with_bench else []) + FIGURE_HEADERS + (["note"] if with_note else [])
    rows = [
        figure.cells(bench if with_bench else None) + ([figure.note] if with_note else [])
        for bench, figure in figures
    ]
    return markdown_table(headers, rows, "l" * len(headers))


def save_run(
    name: str,
    *,
    figures: Sequence[Figure],
    rows: Sequence[Mapping[str, Any]] = (),
    meta: Mapping[str, Any] | None = None,
    machine: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one run (machine, figures, detail rows) to bench/results/<name>.json."""
    return _append_run(
        name,
        {
            "host": dict(machine or machine_info()),
            **(meta or {}),
            "figures": [f.as_json() for f in figures],
            "rows": list(rows),
        },
    )


def _append_run(name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Stamp a run (bench, time, git revision, Python, machine) and append it to
    bench/results/<name>.json."""
    run = {
        "bench": name,
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": _git_revision(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        **body,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    history = json.loads(path.read_text()) if path.exists() else []
    history.append(run)
    path.write_text(json.dumps(history, indent=2) + "\n")
    print(f"\nresults appended to {path.relative_to(ROOT)}")
    return run


def last_run(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return None
    history = json.loads(path.read_text())
    return history[-1] if history else None


# ---------------------------------------------------------------------------------------------
# The service as production runs it: gunicorn from the Procfile's web line, Celery workers
# ---------------------------------------------------------------------------------------------

BENCH_APP_SPEC = "bench.app:create_app()"


# ---------------------------------------------------------------------------------------------
# A whole node on one machine: Redis, the doubles, gunicorn, Celery workers
# ---------------------------------------------------------------------------------------------

COMMERCE_SECRET = "bench-commerce-secret"  # noqa: S105  (local benchmark only)
CALLBACK_SECRET = "bench-callback-secret"  # noqa: S105
STOREFRONT_URLS = {
    "termsUrl": "http://shop.test/terms",
    "checkoutUrl": "http://shop.test/checkout",
    "confirmationUrl": "http://shop.test/confirmation",
}


@dataclass
class Stack:
    redis: RedisServer
    kustom: Any  # playground.kustom.KustomDoubleState
    kustom_url: str
    commerce: Any  # playground.commerce.CommerceDoubleState
    commerce_url: str
    web: Gunicorn
    workers: list[CeleryWorker]
    env: dict[str, str]
    work_dir: Path

    @property
    def url(self) -> str:
        return self.web.url

    def redis_client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.redis.url)

    def scrape(self, metric: str) -> dict[str, float]:
        """Samples of one metric from the web's ``/metrics`` (all processes of the node)."""
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith(metric) and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples


def service_env(redis_url: str, kustom_url: str, commerce_url: str, web_url: str) -> dict[str, str]:
    """The environment of every process of the node (production defaults otherwise)."""
    return {
        "REDIS_URL": redis_url,
        "KUSTOM_API_URL": kustom_url,
        "KUSTOM_USERNAME": "playground",
        "KUSTOM_PASSWORD": "playground",
        "COMMERCE_API_URL": commerce_url,
        "COMMERCE_WEBHOOK_SECRET": COMMERCE_SECRET,
        "CALLBACK_SECRET": CALLBACK_SECRET,
        "PUBLIC_BASE_URL": web_url,
    }


@contextlib.contextmanager
def stack(
    *,
    workers: int = 1,
    worker_concurrency: int = 2,
    kustom_latency: float = 0.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Stack]:
    """Redis, the Kustom and commerce doubles (threads of this process), gunicorn serving
    `bench.app` like the Procfile, and ``workers`` Celery worker processes."""
    from playground.commerce import create_app as create_commerce_double
    from playground.kustom import create_app as create_kustom_double

    work_dir = Path(tempfile.mkdtemp(prefix="kustom-bench-"))
    metrics_dir = work_dir / "metrics"
    metrics_dir.mkdir()
    kustom_app = create_kustom_double(latency_seconds=kustom_latency)
    commerce_app = create_commerce_double(secret=COMMERCE_SECRET)
    port = free_port()
    with contextlib.ExitStack() as exits:
        exits.callback(shutil.rmtree, work_dir, ignore_errors=True)
        redis = exits.enter_context(RedisServer(appendonly=False))
        kustom_server = exits.enter_context(ServerThread(kustom_app, name="bench-kustom"))
        commerce_server = exits.enter_context(ServerThread(commerce_app, name="bench-commerce"))
        node_env = {
            **service_env(
                redis.url, kustom_server.url, commerce_server.url, f"http://127.0.0.1:{port}"
            ),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            **(env or {}),
        }
        started = [
            CeleryWorker(node_env, name=f"bench{i + 1}", concurrency=worker_concurrency)
            for i in range(workers)
        ]
        web = Gunicorn(
            node_env, app_spec=BENCH_APP_SPEC, port=port, log_path=work_dir / "gunicorn.log"
        )
        # Start everything, then wait: the processes boot side by side.
        for worker in started:
            exits.callback(worker.stop)
        exits.enter_context(web)
        for worker in started:
            worker.start(timeout=60)
        yield Stack(
            redis=redis,
            kustom=kustom_app.extensions["kustom_double"],
            kustom_url=kustom_server.url,
            commerce=commerce_app.extensions["commerce_double"],
            commerce_url=commerce_server.url,
            web=web,
            workers=started,
            env=node_env,
            work_dir=work_dir,
        )


# ---------------------------------------------------------------------------------------------
# CPU accounting: where the machine's cores went during a run
# ---------------------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (Linux /proc)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds used so far by these processes (0 for gone ones)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


class CpuMeter:
    """CPU seconds per named group of processes between ``start()`` and ``stop()``."""

    def __init__(self, groups: Mapping[str, Callable[[], Sequence[int]]]) -> None:
        self.groups = dict(groups)
        self._pids: dict[str, list[int]] = {}
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._pids = {name: list(pids()) for name, pids in self.groups.items()}
        self._start = {name: cpu_seconds(pids) for name, pids in self._pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        self.used = {
            name: cpu_seconds(pids) - self._start[name] for name, pids in self._pids.items()
        }
        return self.used


def node_cpu_groups(node: Stack) -> dict[str, Callable[[], Sequence[int]]]:
    """The node's processes by role: web (gunicorn), redis, worker (Celery), this process
    (the Kustom and commerce doubles and the bench driver)."""

    def web() -> list[int]:
        return process_tree(node.web.process.pid) if node.web.process else []

    def redis() -> list[int]:
        return [node.redis.pid] if node.redis.pid else []

    def workers() -> list[int]:
        return [
            pid
            for worker in node.workers
            if worker.process is not None
            for pid in process_tree(worker.process.pid)
        ]

    return {"web": web, "redis": redis, "worker": workers, "doubles": lambda: [os.getpid()]}


# ---------------------------------------------------------------------------------------------
# CPU placement: the web tier on cores of its own, as on a machine of its own
# ---------------------------------------------------------------------------------------------


def _pin(pids: Sequence[int], cpus: set[int]) -> None:
    """Every thread of these processes onto ``cpus`` (threads and children started later
    inherit it from the thread that starts them)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task.name), cpus)


class Placement:
    """Where the node's processes run during a load run.

    ``shared``: everything on every core (one machine running the whole node).
    ``split``: gunicorn on the first half of the cores; Redis, the Celery worker, the
    doubles and the load generator (started from this process, so it inherits) on the
    other half. The web tier then gets the same cores in the baseline and the measured
    row, and nothing else competes for them: its own capacity, as when web and worker
    run on separate machines (README, "Scaling out").
    """

    def __init__(self, node: Stack) -> None:
        self.node = node
        self.all_cpus = set(os.sched_getaffinity(0))
        ordered = sorted(self.all_cpus)
        half = len(ordered) // 2
        self.web_cpus, self.rest_cpus = set(ordered[:half]), set(ordered[half:])

    @property
    def can_split(self) -> bool:
        return bool(self.web_cpus) and bool(self.rest_cpus)

    def apply(self, name: str) -> None:
        groups = node_cpu_groups(self.node)
        rest = [*groups["redis"](), *groups["worker"](), os.getpid()]
        if name == "split":
            _pin(groups["web"](), self.web_cpus)
            _pin(rest, self.rest_cpus)
        else:
            _pin([*groups["web"](), *rest], self.all_cpus)

    def describe(self, name: str) -> str:
        if name == "split":
            return f"web on CPU {sorted(self.web_cpus)}, the rest on CPU {sorted(self.rest_cpus)}"
        return f"everything on CPU {sorted(self.all_cpus)}"


# ---------------------------------------------------------------------------------------------
# Profiling: py-spy on live processes, summarised as inclusive time per function
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Carts and calls
# ---------------------------------------------------------------------------------------------

_BASE_RENDER: dict[str, Any] = {
    "channelKey": "retail-se",
    "currencyCode": "SEK",
    "countryCode": "SE",
    "locale": "sv-SE",
    "taxIncluded": True,
    "shippingOptions": [
        {"id": "postnord", "name": "PostNord", "price": "49.00", "taxRate": "0.25",
         "taxTotal": "9.80"},
        {"id": "express", "name": "Express", "price": "99.00", "taxRate": "0.25",
         "taxTotal": "19.80"},
    ],
}  # fmt: skip


def cart_render(cart_id: str, version: int, quantity: int = 2) -> dict[str, Any]:
    """A contract-shaped render: T-shirts (250.00, 25 % VAT included) x ``quantity``, a pair
    of socks (99.00) and PostNord shipping (49.00); totals add up to the öre."""
    shirts = 250 * quantity
    lines = [
        {
            "lineId": "l1", "productNumber": "TSHIRT-RED-M", "description": "Red T-Shirt",
            "quantity": quantity, "reservedQuantity": quantity, "unitPrice": "250.00",
            "discountTotal": "0.00", "salesTotal": f"{shirts}.00", "taxRate": "0.25",
            "taxTotal": f"{shirts // 5}.00", "productUrl": None, "imageUrl": None,
        },
        {
            "lineId": "l2", "productNumber": "SOCKS-3PK", "description": "Socks, 3-pack",
            "quantity": 1, "reservedQuantity": 1, "unitPrice": "99.00",
            "discountTotal": "0.00", "salesTotal": "99.00", "taxRate": "0.25",
            "taxTotal": "19.80", "productUrl": None, "imageUrl": None,
        },
    ]  # fmt: skip
    total_tax = f"{shirts // 5 + 29}.60"  # + 19.80 + 9.80
    return {
        "cartId": cart_id,
        "version": version,
        **_BASE_RENDER,
        "cartTotal": f"{shirts + 99 + 49}.00",
        "cartTaxTotal": total_tax,
        "lines": lines,
        "shipping": dict(_BASE_RENDER["shippingOptions"][0]),
    }


def render_body(render: Mapping[str, Any]) -> bytes:
    return json.dumps(render, separators=(",", ":")).encode()


def signed_headers(body: bytes) -> dict[str, str]:
    from kustom_app.signing import sign_payload

    return {
        "Content-Type": "application/json",
        "X-Commerce-Signature": sign_payload(COMMERCE_SECRET, body),
    }


def post_render(session: requests.Session, url: str, render: Mapping[str, Any]) -> dict[str, Any]:
    body = render_body(render)
    response = session.post(
        f"{url}/commerce/cart-mutation", data=body, headers=signed_headers(body), timeout=30
    )
    if response.status_code != 202:
        raise RuntimeError(f"cart-mutation answered {response.status_code}: {response.text}")
    answer: dict[str, Any] = response.json()
    return answer


def open_checkout(session: requests.Session, url: str, cart_id: str) -> str:
    """Checkout for a cart whose render was posted: creates its Kustom order; the order id."""
    response = session.post(f"{url}/carts/{cart_id}/kustom", json=STOREFRONT_URLS, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"checkout answered {response.status_code}: {response.text}")
    order_id: str = response.json()["kustomOrderId"]
    return order_id


__all__ = [
    "BENCH_APP_SPEC",
    "CALLBACK_SECRET",
    "COMMERCE_SECRET",
    "STOREFRONT_URLS",
    "CpuMeter",
    "Figure",
    "Gunicorn",
    "Profiler",
    "Row",
    "Stack",
    "cart_render",
    "cpu_seconds",
    "figures_table",
    "last_run",
    "machine_info",
    "machine_line",
    "markdown_table",
    "node_cpu_groups",
    "open_checkout",
    "percentile",
    "post_render",
    "process_tree",
    "procfile_web_command",
    "profile_table",
    "quiet_logs",
    "redis_server",
    "render_body",
    "report",
    "save_run",
    "served",
    "service_env",
    "signed_headers",
    "stack",
    "time_calls",
    "wait_until",
]
