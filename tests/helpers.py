"""Helpers shared by the integration tests: the store's rows, waiting, engine processes."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TINY_ROWS = [(200 + 37 * (k % 7), 8 + 3 * (k % 5)) for k in range(40)]
"""(input, output) lengths of the small trace most tests replay."""


def write_trace(path: Path, rows: list[tuple[int, int]]) -> Path:
    """A JSONL trace of ``(input_length, output_length)`` rows."""
    path.write_text(
        "".join(json.dumps({"input_length": i, "output_length": o}) + "\n" for i, o in rows)
    )
    return path


def engine_pids(home: Path) -> list[int]:
    """Embedded-engine processes started for this test's SCOOT_HOME."""
    found = []
    marker = f"SCOOT_HOME={home}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            env = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"scoot.engine.embedded" in cmd and marker in env.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def study_state(db: Path, name: str) -> str:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return str(conn.execute("SELECT state FROM studies WHERE name = ?", (name,)).fetchone()[0])
    finally:
        conn.close()


def advanced_at(db: Path, name: str) -> float:
    """When an executor last decided what the study does next (0 if never)."""
    conn = sqlite3.connect(db, timeout=10)
    try:
        row = conn.execute("SELECT advanced_at FROM studies WHERE name = ?", (name,)).fetchone()
        return float(row[0] or 0.0)
    finally:
        conn.close()


def looked_at_since(db: Path, name: str, ts: float) -> Callable[[], bool]:
    """A condition: an advance of the study decided after ``ts`` (for a paused or cancelled
    study: one that could have started a trial and did not)."""
    return lambda: advanced_at(db, name) > ts


def overlaps(trials: list[sqlite3.Row]) -> tuple[bool, list[str]]:
    """Whether any two trials overlapped in time, and every same-set overlap (must be none)."""
    ran = [t for t in trials if t["started_at"] and t["ended_at"]]
    any_overlap, clashes = False, []
    for i, a in enumerate(ran):
        for b in ran[i + 1 :]:
            if a["started_at"] < b["ended_at"] and b["started_at"] < a["ended_at"]:
                any_overlap = True
                if a["gpu_set"] == b["gpu_set"]:
                    clashes.append(f"#{a['number']} and #{b['number']} on {a['gpu_set']}")
    return any_overlap, clashes


def counted(trials: list[sqlite3.Row]) -> int:
    return sum(t["state"] in ("completed", "failed") for t in trials)


def trial_rows(db: Path) -> list[sqlite3.Row]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM trials ORDER BY number").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # the store file exists, its schema is being written
        raise
    finally:
        conn.close()


POLL_S = 0.05
"""How often a wait looks at its condition (the timeout only bounds a failing test)."""


def wait_for(pred: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for: {what}")


async def until(pilot: Any, pred: Callable[[], bool], what: str, limit_s: float = 60.0) -> None:
    """In a Pilot test: let the app process its messages until ``pred`` holds (a worker
    thread's result shown, a screen pushed), then until it is idle again."""
    end = time.monotonic() + limit_s
    while True:
        await pilot.pause()
        try:
            held = pred()
        except Exception:  # a widget not mounted yet: the condition does not hold yet
            held = False
        if held:
            await pilot.pause()
            return
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(POLL_S)


@contextmanager
def worker(
    tmp_path: Path, *args: str, name: str = "worker", env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``scoot worker`` process for the test's SCOOT_HOME (or ``env``'s), stopped (SIGINT)
    on exit."""
    log = (tmp_path / f"{name}.log").open("wb")
    argv = [sys.executable, "-m", "scoot", "worker", *args]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


STUDY = """
name = "{name}"
objectives = {objectives}
budget = {budget}
seed = 1
gpu_sets = {gpu_sets}
constraints = ["max_num_batched_tokens >= max_num_seqs"]

[engine]
kind = "embedded"
model = "llama-3.1-8b"
gpu = "h100"
args = ["--max-model-len", "4096"]
startup_timeout_s = 30
stop_grace_s = 3
env = {{ SCOOT_ENGINE_STARTUP_S = "{startup}" }}

[trace]
file = "{trace}"
rate = 8.0
duration_s = {duration}

[stress]
request_timeout_s = 10
drain_timeout_s = 10
robustness_runs = {robust}
max_lateness_ms = {lateness}  # plumbing, not timing: a loaded machine must not abandon runs

[params.max_num_seqs]
type = "int"
low = 4
high = 256
log = true
default = 256

[params.max_num_batched_tokens]
type = "int"
low = 256
high = 8192
log = true
default = 2048

[params.enable_prefix_caching]
type = "bool"
default = true
"""


def study_text(**fields: object) -> str:
    """The test study file with ``fields`` filled in (lists written as TOML arrays)."""
    for key in ("objectives", "gpu_sets"):
        fields[key] = json.dumps(list(fields[key]))  # type: ignore[call-overload]
    return textwrap.dedent(STUDY.format(**fields))


TWIN_MODEL = "/models/tiny-llama"


def profiled_table(tmp_path: Path, **twin: Any) -> str:
    """A small table as `scoot engine profile` writes it: decode 2 ms + 0.01 ms per sequence,
    prefill 1 ms + 0.01 ms per token, no attention cost (so each step is easy to price)."""
    from scoot.engine.catalog import profile_refusals

    facts = {
        "kv_tokens": 8192,
        "max_model_len": 2048,
        "vocab": 32000,
        "startup_s": 24.5,
        "request_overhead_ms": 1.5,
        "defaults": {"max_num_seqs": 128, "max_num_batched_tokens": 2048, "block_size": 128},
        "refuses": profile_refusals("vllm-cpu"),
        **twin,
    }
    tokens = [1, 4, 16, 128, 512, 2048]
    doc = {
        "provenance": {"source": "measured at http://127.0.0.1:8000 serving tiny-llama"},
        "axes": {
            "tokens": tokens,
            "prompts": [128, 512, 2048],
            "batches": [1, 4, 16],
            "contexts": [128, 512],
        },
        "models": {
            TWIN_MODEL: [
                {
                    "tp": 1,
                    "linear_ms": [1.0 + 0.01 * t for t in tokens],
                    "prefill_attn_ms": [0.0, 0.0, 0.0],
                    "decode_attn_ms": [[0.0, 0.0]] * 3,
                    "twin": facts,
                }
            ]
        },
    }
    path = tmp_path / f"twin-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps(doc))
    return str(path)


FAKE_ROUTES = """
async def health(request):
    return web.Response(text="")

app = web.Application()
app.router.add_post("/v1/completions", completions)
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""
"""What every scripted fake server ends with: its routes, on the port it is given."""


def answers(url: str) -> bool:
    """Whether ``url`` answers an HTTP GET now."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
"""Headless Chromium on a machine with a closed network (Debian's package, run as root)."""


def port_listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A private ``redis-server`` on loopback (Debian's package); yields its queue URL."""
    import shutil
    import socket

    exe = shutil.which("redis-server")
    assert exe, "redis-server is missing: tools/debian-packages installs it"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        cwd=folder,
    )
    try:
        wait_for(lambda: port_listening(port), 30, "redis-server to listen")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
