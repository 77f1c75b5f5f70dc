"""Run the standard workloads on Trinity and on a raw arq job chain, and print the table.

    python -m bench.run [--repeat N] [--workloads W1,W2,W3] [--database-url URL] [--json]

What it starts (everything private to the run, removed at the end):
  - a Redis server (app.redis_launcher.start_redis), unless --redis-url is given;
  - a fresh SQLite database in a temporary folder (or --database-url, e.g. PostgreSQL);
  - ONE Trinity worker as its own process: `python -m app.cli worker`;
  - ONE raw arq worker as its own process: `python -m bench.raw_arq` (same Redis, same poll
    delay, same max_jobs, its own queue), see bench/raw_arq.py.

This process is the client: it imports the generated definitions, starts executions through
`ExecutionService.start` (what the API and CLI call) and reads `executions.finished_at`
from the database. Not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.settings import Settings
from bench.experiments import EXPERIMENTS, apply_experiments
from bench.raw_arq import RawDriver, is_postgres, raw_worker_command
from bench.workloads import WORKLOADS, Workload

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = ("completed", "failed", "cancelled")


# --- processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process (all its threads) so far; Linux only."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def machine_busy_seconds() -> float | None:
    """CPU seconds all processes of the machine used so far (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class CpuMeter:
    """CPU seconds used by a few processes between start() and stop()."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self.began: dict[str, float | None] = {}

    def start(self) -> None:
        self.began = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self.began["machine"] = machine_busy_seconds()
        self.wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        out = {}
        for k, p in self.pids.items():
            now, began = cpu_seconds(p), self.began.get(k)
            if now is not None and began is not None:
                out[k] = now - began
        machine, began = machine_busy_seconds(), self.began.get("machine")
        if machine is not None and began is not None:
            # CPU that processes outside this benchmark used meanwhile, as cores
            others = max(0.0, machine - began - sum(out.values()))
            out["others_cores"] = others / max(time.monotonic() - self.wall, 1e-6)
        return out


def spawn(name: str, cmd: list[str], env: dict[str, str], log_dir: Path) -> Proc:
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    return Proc(name, proc, log_path)


async def wait_ready(redis: Any, proc: Proc, queue: str, timeout: float = 60.0) -> None:
    """arq writes `<queue>:health-check` on its first poll, after on_startup has run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited at start:\n{proc.log_tail()}")
        if await redis.exists(f"{queue}:health-check"):
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{proc.name} not ready within {timeout:g}s:\n{proc.log_tail()}")


async def wait_idle(redis: Any, queues: Sequence[str], timeout: float = 30.0) -> None:
    """Until no job is queued on any of the queues, then a short settle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = [await redis.zcard(q) for q in queues]
        if not any(counts):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)


# --- measuring Trinity ----------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass
class ExecRow:
    id: str
    status: str
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    error_message: str | None


class ExecutionReader:
    """Reads execution rows cheaply while the worker runs, over one persistent connection
    (stdlib `sqlite3`, or `asyncpg` for PostgreSQL): a primary-key lookup costs tens of
    microseconds, so polling every few milliseconds does not steal CPU from the worker on
    a small machine, as polling through the app's ORM sessions did."""

    def __init__(self, c: Any) -> None:
        self.c = c
        self.url = c.settings.database_url
        self.conn = sqlite3.connect(self.url.split(":///", 1)[1], timeout=30,
                                    check_same_thread=False) \
            if self.url.startswith("sqlite") else None
        self.pg: Any = None

    async def rows(self, ids: Sequence[str]) -> list[ExecRow]:
        query = ("SELECT id, status, created_at, started_at, finished_at, error_message "
                 "FROM executions WHERE id ")
        if self.conn is not None:
            marks = ",".join("?" * len(ids))
            found = self.conn.execute(query + f"IN ({marks})", list(ids)).fetchall()
        else:
            if self.pg is None:
                import asyncpg

                self.pg = await asyncpg.connect(self.url.replace("postgresql+asyncpg://",
                                                                 "postgresql://"))
            found = await self.pg.fetch(query + "= ANY($1::text[])", list(ids))
        return [ExecRow(r[0], r[1], *(_parse_time(v) for v in tuple(r)[2:5]), r[5])
                for r in found]

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.pg is not None:
            await self.pg.close()


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return _utc(value)
    return _utc(datetime.fromisoformat(str(value)))


async def wait_finished(reader: ExecutionReader, ids: Sequence[str], timeout: float,
                        interval: float) -> list[ExecRow]:
    deadline = time.monotonic() + timeout
    while True:
        rows = await reader.rows(ids)
        if len(rows) == len(ids) and all(r.status in TERMINAL and r.finished_at is not None
                                         for r in rows):
            return rows
        if time.monotonic() > deadline:
            done = sum(1 for r in rows if r.status in TERMINAL)
            raise TimeoutError(f"{done}/{len(ids)} executions finished within {timeout:g}s")
        await asyncio.sleep(interval)


async def start_many(c: Any, row: Any, count: int, concurrent: bool) -> list[str]:
    async def one() -> str:
        x = await c.executions.start(row, {}, "bench")
        return str(x.id)
    if concurrent:
        return list(await asyncio.gather(*(one() for _ in range(count))))
    return [await one() for _ in range(count)]


async def engine_run(c: Any, reader: ExecutionReader, row: Any, w: Workload, timeout: float,
                     concurrent_start: bool) -> dict[str, Any]:
    """One run: start the execution(s), wait for the end, read the times from the DB."""
    t0 = datetime.now(UTC)
    ids = await start_many(c, row, w.executions, concurrent_start)
    started_s = (datetime.now(UTC) - t0).total_seconds()
    interval = 0.01 if w.executions == 1 else 0.02
    rows = await wait_finished(reader, ids, timeout, interval)
    bad = [r for r in rows if r.status != "completed"]
    if bad:
        raise RuntimeError(f"{w.key}: {len(bad)} execution(s) did not complete, e.g. "
                           f"{bad[0].status}: {bad[0].error_message}")
    finished = [_utc(r.finished_at) for r in rows]
    last = max(f for f in finished if f is not None)
    total = (last - t0).total_seconds()
    result: dict[str, Any] = {"total_s": total, "steps": w.steps * w.executions,
                              "start_calls_s": started_s}
    if w.executions == 1:
        result["per_step_ms"] = total / w.steps * 1000
        return result
    first = min(_utc(r.started_at) or _utc(r.created_at) for r in rows)  # type: ignore
    window = (last - first).total_seconds()  # type: ignore[operator]
    latencies = sorted((_utc(r.finished_at) - _utc(r.created_at)).total_seconds()  # type: ignore
                       for r in rows)
    result.update(per_step_ms=window / (w.steps * w.executions) * 1000,
                  throughput=w.executions / window, latencies_s=latencies)
    return result


async def raw_run(raw: RawDriver, w: Workload, timeout: float) -> dict[str, Any]:
    if w.key == "W2":
        return await raw.fan_out(w.steps - 2, timeout)
    if w.executions > 1:
        return await raw.many_chains(w.executions, w.steps, timeout)
    return await raw.chain(w.steps, timeout)


# --- statistics and the table ---------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def _cpu_per_step(run: dict[str, Any], cpu: dict[str, float]) -> None:
    for who, seconds in cpu.items():
        if who == "others_cores":
            run["others_cores"] = seconds
        else:
            run[f"{who}_cpu_ms_per_step"] = seconds / run["steps"] * 1000


def _median(runs: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def _latency_summary(run: dict[str, Any]) -> None:
    lat = run.pop("latencies_s", None)
    if lat:
        run.update(p50_s=percentile(lat, 50), p95_s=percentile(lat, 95),
                   p99_s=percentile(lat, 99), max_s=lat[-1])


@dataclass
class Summary:
    workload: Workload
    engine_runs: list[dict[str, Any]] = field(default_factory=list)
    raw_runs: list[dict[str, Any]] = field(default_factory=list)
    inline_runs: list[dict[str, Any]] = field(default_factory=list)

    def medians(self) -> dict[str, Any]:
        m: dict[str, Any] = {}
        for prefix, runs in (("", self.engine_runs), ("raw_", self.raw_runs),
                             ("inline_", self.inline_runs)):
            for key in ("total_s", "per_step_ms", "throughput", "p50_s", "p95_s", "p99_s",
                        "per_commit_ms", "worker_cpu_ms_per_step", "redis_cpu_ms_per_step",
                        "client_cpu_ms_per_step", "others_cores"):
                value = _median(runs, key)
                if value is not None:
                    m[prefix + key] = value
        if m.get("per_step_ms") and m.get("raw_per_step_ms"):
            m["ratio"] = m["per_step_ms"] / m["raw_per_step_ms"]
        return m

    def checks(self) -> dict[str, bool]:
        w, m = self.workload, self.medians()
        out: dict[str, bool] = {}
        if w.max_ms_per_step is not None and "per_step_ms" in m:
            out["ms_per_step"] = m["per_step_ms"] <= w.max_ms_per_step
        if w.max_ratio is not None and "ratio" in m:
            out["ratio"] = m["ratio"] <= w.max_ratio
        if w.min_throughput is not None and "throughput" in m:
            out["throughput"] = m["throughput"] >= w.min_throughput
        if w.max_p95_s is not None and "p95_s" in m:
            out["p95"] = m["p95_s"] <= w.max_p95_s
        return out

    def to_dict(self) -> dict[str, Any]:
        checks = self.checks()
        return {"workload": self.workload.key, "title": self.workload.title,
                "steps_per_execution": self.workload.steps,
                "executions": self.workload.executions, "target": self.workload.target_text,
                "medians": self.medians(), "checks": checks,
                "pass": bool(checks) and all(checks.values()),
                "runs": self.engine_runs, "raw_runs": self.raw_runs,
                "inline_runs": self.inline_runs}


def _ms(v: float | None) -> str:
    return "–" if v is None else f"{v:.2f} ms"


def _s(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v * 1000:.0f} ms" if v < 10 else f"{v:.2f} s"


def render_table(summaries: Sequence[Summary]) -> str:
    header = ["workload", "runs", "median total", "per step", "raw floor per step", "ratio",
              "target", "pass/fail"]
    rows = []
    for sm in summaries:
        m, checks = sm.medians(), sm.checks()
        verdict = "PASS" if checks and all(checks.values()) else \
            "FAIL (" + ", ".join(k for k, ok in checks.items() if not ok) + ")"
        rows.append([f"{sm.workload.key} {sm.workload.title}", str(len(sm.engine_runs)),
                     _s(m.get("total_s")), _ms(m.get("per_step_ms")),
                     _ms(m.get("raw_per_step_ms")),
                     f"{m['ratio']:.2f}×" if "ratio" in m else "–",
                     sm.workload.target_text, verdict])
    lines = [_md_row(header), _md_row(["---"] * len(header))] + [_md_row(r) for r in rows]
    extra = [sm for sm in summaries if sm.workload.executions > 1]
    if extra:
        head = ["workload", "who", "throughput", "p50", "p95", "p99", "target"]
        lines += ["", _md_row(head), _md_row(["---"] * len(head))]
        for sm in extra:
            m = sm.medians()
            for who, p in (("trinity", ""), ("raw arq", "raw_")):
                tp = m.get(p + "throughput")
                lines.append(_md_row([sm.workload.key, who,
                                      "–" if tp is None else f"{tp:.1f} exec/s",
                                      _s(m.get(p + "p50_s")), _s(m.get(p + "p95_s")),
                                      _s(m.get(p + "p99_s")),
                                      sm.workload.target_text if not p else ""]))
    head = ["workload", "who", "worker CPU/step", "redis CPU/step", "client CPU/step",
            "other processes (cores)"]
    lines += ["", _md_row(head), _md_row(["---"] * len(head))]
    for sm in summaries:
        m = sm.medians()
        for who, p in (("trinity", ""), ("raw arq", "raw_")):
            if m.get(p + "worker_cpu_ms_per_step") is None:
                continue
            others = m.get(p + "others_cores")
            lines.append(_md_row([sm.workload.key, who,
                                  *(_ms(m.get(f"{p}{x}_cpu_ms_per_step"))
                                    for x in ("worker", "redis", "client")),
                                  "–" if others is None else f"{others:.2f}"]))
    for sm in (sm for sm in summaries if sm.inline_runs):
        m, w = sm.medians(), sm.workload
        text = (f"{w.key} one-job floor ({'each execution' if w.executions > 1 else 'the'} "
                f"{w.steps} commits in one raw arq job, no queue hop between them, which is "
                f"how Trinity chains ready steps inline): "
                f"{_ms(m.get('inline_per_step_ms'))} per step")
        if m.get("inline_throughput") is not None:
            text += (f", {m['inline_throughput']:.1f} exec/s, p95 "
                     f"{_s(m.get('inline_p95_s'))}")
        if m.get("inline_per_commit_ms") is not None:
            text += f", {_ms(m['inline_per_commit_ms'])} per commit"
        lines += ["", text + "."]
    return "\n".join(lines)


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


# --- the run --------------------------------------------------------------------------------


def _worker_env(settings: Any, redis_url: str, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"TRINITY_HOME": str(home), "DATABASE_URL": settings.database_url,
                "REDIS_URL": redis_url, "TRINITY_POLL_DELAY": str(settings.poll_delay),
                "TRINITY_QUEUE": settings.queue_name,
                "TRINITY_WORKER_MAX_JOBS": str(settings.worker_max_jobs),
                "PYTHONUNBUFFERED": "1"})
    return env


def _workload_keys(text: str) -> list[str]:
    keys = [k.strip().upper() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s): {', '.join(unknown)} (known: W1, W2, W3)")
    return keys


@dataclass
class Bench:
    """Everything one benchmark run starts, and the measuring loop."""

    args: argparse.Namespace
    say: Any
    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="trinity-bench-")))
    redis_server: Any = None
    procs: list[Proc] = field(default_factory=list)
    c: Any = None
    raw: RawDriver | None = None
    rows: dict[str, Any] = field(default_factory=dict)
    queues: list[str] = field(default_factory=list)
    meters: dict[str, CpuMeter] = field(default_factory=dict)
    reader: Any = None

    async def setup(self, keys: Sequence[str]) -> None:
        from app.bootstrap import bootstrap, seed_demo_agents
        from app.queue import connect
        from app.redis_launcher import start_redis

        args = self.args
        self.redis_server = start_redis(args.redis_url)
        home = self.tmp / "home"
        db_url = args.database_url or f"sqlite+aiosqlite:///{self.tmp / 'trinity.db'}"
        base = Settings.from_env({"TRINITY_HOME": str(home), "DATABASE_URL": db_url})
        settings = replace(base, poll_delay=args.poll_delay, worker_max_jobs=args.max_jobs,
                           queue_name=f"trinity:bench:{uuid.uuid4().hex[:8]}")
        raw_db = settings.database_url if is_postgres(settings.database_url) \
            else str(self.tmp / "raw.db")
        raw_queue = f"bench:raw:{uuid.uuid4().hex[:8]}"
        url = self.redis_server.url
        self.say(f"# load average before the run: {_loadavg()}")
        self.say(f"# temp dir {self.tmp}; database {settings.database_url.split('@')[-1]}; "
                 f"redis {url}; poll delay {settings.poll_delay:g}s; "
                 f"max_jobs {settings.worker_max_jobs}")
        self.c = await bootstrap(settings, url)
        await seed_demo_agents(self.c.db)
        self.reader = ExecutionReader(self.c)
        for k in keys:
            imported = await self.c.definitions.import_text(WORKLOADS[k].yaml, publish=True)
            self.rows[k] = imported.row
        worker_cmd = [sys.executable, "-m", "app.cli", "worker"]
        if args.experiment:
            worker_cmd = [sys.executable, "-m", "bench.worker_variant",
                          *(f"--experiment={e}" for e in args.experiment)]
        if args.profile_worker:
            worker_cmd[1:1] = ["-m", "cProfile", "-o", str(Path(args.profile_worker).resolve())]
        self.procs.append(spawn("trinity-worker", worker_cmd,
                                _worker_env(settings, url, home), self.tmp))
        self.procs.append(spawn("raw-worker", raw_worker_command(
            sys.executable, url, raw_db, raw_queue, settings.poll_delay,
            settings.worker_max_jobs), dict(os.environ, PYTHONUNBUFFERED="1"), self.tmp))
        await wait_ready(self.c.redis, self.procs[0], settings.queue_name)
        await wait_ready(self.c.redis, self.procs[1], raw_queue)
        self.raw = RawDriver(await connect(url), raw_db, raw_queue)
        self.queues = [settings.queue_name, raw_queue]
        redis_pid = self.redis_server.process.pid if self.redis_server.process else None
        for name, proc in (("trinity", self.procs[0]), ("raw", self.procs[1])):
            self.meters[name] = CpuMeter({"worker": proc.proc.pid, "redis": redis_pid,
                                          "client": os.getpid()})

    async def idle(self) -> None:
        await wait_idle(self.c.redis, self.queues)

    async def engine(self, w: Workload) -> dict[str, Any]:
        self.meters["trinity"].start()
        e = await engine_run(self.c, self.reader, self.rows[w.key], w, self.args.timeout,
                             self.args.w3_start == "concurrent")
        _cpu_per_step(e, self.meters["trinity"].stop())
        _latency_summary(e)
        await self.idle()
        return e

    async def floor(self, w: Workload) -> dict[str, Any]:
        assert self.raw is not None
        self.meters["raw"].start()
        r = await raw_run(self.raw, w, self.args.timeout)
        _cpu_per_step(r, self.meters["raw"].stop())
        _latency_summary(r)
        await self.idle()
        return r

    async def warm_up(self, keys: Sequence[str]) -> None:
        self.say("# warm-up (not counted): one execution of each workload (5 of W3) and "
                 "its raw twin")
        for k in keys:
            small = replace(WORKLOADS[k], executions=min(WORKLOADS[k].executions, 5))
            await self.engine(small)
            if not self.args.no_raw:
                await self.floor(small)

    async def measure(self, w: Workload) -> Summary:
        sm = Summary(w)
        for i in range(self.args.repeat):
            e = await self.engine(w)
            sm.engine_runs.append(e)
            line = f"{w.key} run {i + 1}: trinity {_s(e['total_s'])} " \
                f"({_ms(e['per_step_ms'])}/step, worker CPU " \
                f"{_ms(e.get('worker_cpu_ms_per_step'))}/step"
            if "throughput" in e:
                line += f", {e['throughput']:.1f} exec/s, p95 {_s(e['p95_s'])}"
            line += ")"
            if not self.args.no_raw:
                assert self.raw is not None
                r = await self.floor(w)
                sm.raw_runs.append(r)
                line += f"; raw {_s(r['total_s'])} ({_ms(r['per_step_ms'])}/step)"
                inline = await self._one_job_floor(w)
                if inline is not None:
                    sm.inline_runs.append(inline)
            self.say("# " + line)
        return sm

    async def _one_job_floor(self, w: Workload) -> dict[str, Any] | None:
        """The floor of inline chaining: each execution's commits inside one raw job."""
        assert self.raw is not None
        if w.key == "W2":
            return None
        if w.executions == 1:
            r = await self.raw.inline(w.steps, self.args.timeout)
        else:
            r = await self.raw.many_inline(w.executions, w.steps, self.args.timeout)
        _latency_summary(r)
        await self.idle()
        return r

    async def close(self) -> None:
        for p in self.procs:
            p.stop()
        if self.raw is not None:
            await self.raw.close()
            await self.raw.redis.aclose()
        if self.reader is not None:
            await self.reader.close()
        if self.c is not None:
            await self.c.close()
        if self.redis_server is not None:
            self.redis_server.stop()
        if self.args.keep:
            print(f"# kept {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


async def run(args: argparse.Namespace, say: Any) -> list[Summary]:
    keys = _workload_keys(args.workloads)
    if args.experiment:
        apply_experiments(args.experiment)
        say(f"# WHAT-IF experiments applied (not the real engine): {', '.join(args.experiment)}")
    bench = Bench(args, say)
    try:
        await bench.setup(keys)
        await bench.warm_up(keys)
        return [await bench.measure(WORKLOADS[k]) for k in keys]
    finally:
        await bench.close()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3, help="runs per workload (default 3)")
    p.add_argument("--workloads", default="W1,W2,W3", help="comma-separated (default all)")
    p.add_argument("--database-url", help="default: a fresh SQLite file in a temp folder")
    p.add_argument("--redis-url", help="use this Redis instead of a private one")
    p.add_argument("--poll-delay", type=float, default=0.05,
                   help="arq poll delay of both workers, seconds (default 0.05)")
    p.add_argument("--max-jobs", type=int, default=Settings().worker_max_jobs,
                   help="arq max_jobs of both workers (default: Trinity's default, "
                        f"{Settings().worker_max_jobs})")
    p.add_argument("--w3-start", choices=("concurrent", "sequential"), default="concurrent",
                   help="start W3's executions with asyncio.gather (default) or one by one")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    p.add_argument("--no-raw", action="store_true", help="skip the raw arq floor")
    p.add_argument("--experiment", action="append", default=[], choices=sorted(EXPERIMENTS),
                   help="a what-if change applied in the client and the Trinity worker "
                   "(repeatable; see bench/experiments.py): " + ", ".join(sorted(EXPERIMENTS)))
    p.add_argument("--profile-worker", metavar="FILE",
                   help="run the Trinity worker under cProfile and write the stats to FILE")
    p.add_argument("--keep", action="store_true", help="keep the temp folder (logs, DBs)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    def say(text: str) -> None:
        print(text, file=sys.stderr if args.json else sys.stdout, flush=True)

    with contextlib.suppress(ImportError):
        import logging

        logging.basicConfig(level=logging.WARNING)
    summaries = asyncio.run(run(args, say))
    if args.json:
        print(json.dumps({"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                      "loadavg_after": _loadavg()},
                          "poll_delay": args.poll_delay, "max_jobs": args.max_jobs,
                          "experiments": args.experiment, "w3_start": args.w3_start,
                          "database": "postgresql" if args.database_url and
                          is_postgres(args.database_url) else "sqlite",
                          "workloads": [s.to_dict() for s in summaries]}, indent=2))
    else:
        print(f"\n# load average after the run: {_loadavg()}\n")
        print(render_table(summaries))
    return 0 if all(s.checks() and all(s.checks().values()) for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
