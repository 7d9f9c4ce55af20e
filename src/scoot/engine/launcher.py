"""Launching an engine under test: argv templates, GPU set, port, readiness, logs, stop.

An engine is always a subprocess started from an argv list (never a shell string), in its own
process group so that stopping it stops everything it spawned, with ``CUDA_VISIBLE_DEVICES``
set to its GPU set and its output captured to a log file per trial. The group's leader is the
reaper (:mod:`scoot.engine.reaper`), which the kernel signals when the thread that launched it
dies (``PR_SET_PDEATHSIG``), even by SIGKILL, and which then stops every process of the engine,
grandchildren included; the store's recovery stops a recorded group as well.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scoot.domain import FailureKind, Value
from scoot.engine.kinds import kind_of

HOST = "127.0.0.1"
CLASSIFY_LINES = 400
"""Log lines read to classify a failed start: vLLM prints its reason mid-log, then a hundred
lines of traceback and shutdown."""


def flags_for(config: Mapping[str, Value], kind: str = "vllm") -> list[str]:
    """Engine flags for a config: ``--name value``; booleans as ``--name``/``--no-name`` (vLLM's
    BooleanOptionalAction), or for store-true engines ``--name`` when true and nothing when
    false."""
    out: list[str] = []
    switches = kind_of(kind).store_true_bools
    for name, value in sorted(config.items()):
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool) and switches:
            if value:
                out.append(flag)
        elif isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, float):
            out += [flag, f"{value:.6g}"]
        else:
            out += [flag, str(value)]
    return out


SHORT_FLAGS = {
    "-q": "quantization",
    "-tp": "tensor_parallel_size",
    "-pp": "pipeline_parallel_size",
    "-dp": "data_parallel_size",
    "-dcp": "decode_context_parallel_size",
    "-pcp": "prefill_context_parallel_size",
    "-ep": "enable_expert_parallel",
    "-sc": "speculative_config",
    "-cc": "compilation_config",
    "-ac": "attention_config",
}
"""vLLM 0.32's one-dash aliases of the flags worth tuning or fixing (its parser's own)."""


def parse_flags(args: Sequence[str]) -> list[tuple[str, Value | list[Value]]]:
    """The inverse of :func:`flags_for`: ``--name value``, ``--name=value``, ``--name`` and
    ``--no-name`` to ``(name, value)`` with underscores; numbers parsed, other words kept; the
    one-dash aliases (``-tp 2``) by their long name; several values after one flag
    (``--cuda-graph-sizes 1 2 4``) as a list. A word that is not a flag and follows none is
    kept as ``("", word)`` rather than dropped."""
    out: list[tuple[str, Value | list[Value]]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in SHORT_FLAGS:
            name = SHORT_FLAGS[arg]
        elif arg.startswith("--"):
            name = arg[2:].replace("-", "_")
        else:
            out.append(("", number_or_word(arg)))
            continue
        if "=" in name:
            name, raw = name.split("=", 1)
            out.append((name, number_or_word(raw)))
            continue
        values: list[Value] = []
        while i < len(args) and not _is_flag(args[i]):
            values.append(number_or_word(args[i]))
            i += 1
        if len(values) > 1:
            out.append((name, values))
        elif values:
            out.append((name, values[0]))
        elif name.startswith("no_"):
            out.append((name[3:], False))
        else:
            out.append((name, True))
    return out


def _is_flag(word: str) -> bool:
    """``--x`` or a one-dash alias; ``-1`` and ``-0.5`` are values."""
    return word.startswith("--") or word in SHORT_FLAGS


def number_or_word(raw: str) -> Value:
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    return raw


def build_argv(
    kind: str,
    command: Sequence[str],
    fields: Mapping[str, str],
    fixed_args: Sequence[str],
    config: Mapping[str, Value],
) -> list[str]:
    """The full argv: template with placeholders filled, then fixed flags, then tuned flags."""
    template = list(command) if command else list(kind_of(kind).template)
    try:
        argv = [part.format(**fields) for part in template]
    except KeyError as exc:
        raise ValueError(f"engine command template uses unknown placeholder {exc}") from None
    return argv + list(fixed_args) + flags_for(config, kind)


def free_port() -> int:
    """A free TCP port on loopback (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the launching thread dies;
    the reaper (:mod:`scoot.engine.reaper`) then stops the engine's whole group."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


REAPER = (sys.executable, "-m", "scoot.engine.reaper", "--")
"""Every engine runs under the reaper: nothing it starts outlives it or the tuner."""


@dataclass(frozen=True, slots=True)
class LaunchFailure:
    """Why an engine did not become ready, and the log lines that show it."""

    kind: FailureKind
    message: str


class EngineProcess:
    """One running engine process group."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        gpu_set: str,
        port: int,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.port = port
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        full_env = dict(os.environ)
        full_env.update(env or {})
        # "node2:0,1" names a set on one machine of a shared queue; the devices follow the colon.
        full_env["CUDA_VISIBLE_DEVICES"] = gpu_set.rsplit(":", 1)[-1]
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log.write(("$ " + " ".join(self.argv) + "\n").encode())
        self._log.flush()
        self.started = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                [*REAPER, *self.argv],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=full_env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except OSError:
            self._log.close()
            raise
        self.pgid = self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def wait_ready(self, timeout: float, model: str) -> LaunchFailure | None:
        """Poll ``/health`` until it answers 200, then send one tiny request.

        Returns None when ready, else the failure (the process exited, or the timeout passed).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                return classify_exit(code, self.log_tail(CLASSIFY_LINES))
            try:
                with urllib.request.urlopen(self.base_url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.2)
        else:
            return LaunchFailure(
                FailureKind.STARTUP_TIMEOUT,
                f"not ready within {timeout:.0f} s; log tail:\n{self.log_tail(8)}",
            )
        body = json.dumps({"model": model, "prompt": [1, 2, 3], "max_tokens": 1}).encode()
        req = urllib.request.Request(
            self.base_url + "/v1/completions",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=max(5.0, deadline - time.monotonic())):
                pass
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            return LaunchFailure(
                FailureKind.INVALID_ARGS, f"probe request: HTTP {exc.code}: {detail}"
            )
        except (urllib.error.URLError, OSError) as exc:
            code = self.proc.poll()
            if code is not None:
                return classify_exit(code, self.log_tail(CLASSIFY_LINES))
            return LaunchFailure(FailureKind.HANG, f"probe request failed: {exc}")
        return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of this engine's log."""
        return log_tail(self.log_path, lines)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the process group, then SIGKILL after ``grace`` seconds."""
        try:
            kill_group(self.pgid, grace)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1)
        finally:
            self._log.close()


def kill_group(pgid: int, grace: float = 10.0) -> bool:
    """Stop every process in group ``pgid``; True if there was anything to stop."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(-pgid, os.WNOHANG)
        if not group_alive(pgid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    for _ in range(100):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(-pgid, os.WNOHANG)
        if not group_alive(pgid):
            break
        time.sleep(0.02)
    return True


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still running (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg(0) succeeds for zombies too: look for a live member.
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def host_name() -> str:
    """This machine's name, recorded with every process a trial starts: only the host that
    started a process may signal it (a pgid means nothing on another machine).
    ``$SCOOT_HOST_ID`` overrides it: two containers that share a hostname, or tests that play
    two hosts on one machine."""
    return os.environ.get("SCOOT_HOST_ID") or socket.gethostname()


def start_identity(pid: int) -> str | None:
    """What tells process ``pid`` apart from a later one that reuses its number: the boot id
    and the start time in clock ticks since boot (``/proc/PID/stat`` field 22). None when the
    process does not exist (or there is no ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return f"{boot}/{fields[19]}"


@dataclass(frozen=True, slots=True)
class ProcessRef:
    """A process as a trial records it: on which host, which pid (or pgid), started when."""

    host: str | None
    pid: int | None
    started: str | None

    @staticmethod
    def of(pid: int) -> ProcessRef:
        return ProcessRef(host_name(), pid, start_identity(pid))

    def local(self) -> bool:
        return self.host is not None and self.host == host_name()

    def alive(self) -> bool:
        """Whether the very process recorded is still running here. A pid reused by another
        process, or a process on another host, is not it."""
        if not self.local() or self.pid is None or self.started is None:
            return False
        return start_identity(self.pid) == self.started

    def stop_group(self, grace: float) -> bool:
        """Stop the recorded process group, only on its own host and only if its leader is
        still the process recorded (or gone with members left: the kernel does not reuse a
        pid while a group of that id exists). True if something was stopped."""
        if not self.local() or self.pid is None or self.started is None:
            return False
        now = start_identity(self.pid)
        if now is not None and now != self.started:
            return False  # the number belongs to another process now: leave it alone
        if not group_alive(self.pid):
            return False
        return kill_group(self.pid, grace)


NO_PROCESS = ProcessRef(None, None, None)
"""What a trial records before any process claimed it."""


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' if unreadable)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


# Log patterns, checked in order; the first that matches names the failure kind.
_PATTERNS: tuple[tuple[FailureKind, tuple[str, ...]], ...] = (
    (
        FailureKind.KV_CACHE_TOO_SMALL,
        (
            "KV cache is needed, which is larger than the available",
            "estimated maximum model length",
            # Nothing left for the cache: the same cause (the memory share), past the load.
            "No available memory for the cache blocks",
        ),
    ),
    (
        FailureKind.STARTUP_OOM,
        ("CUDA out of memory", "OutOfMemoryError"),
    ),
    (
        FailureKind.INVALID_ARGS,
        (
            "Value error, ",  # pydantic's line under a ValidationError: the actual reason
            "No common block size",  # a block size the attention backend cannot use
            "error: argument",
            "error: unrecognized arguments",
            "invalid choice",
            "must be greater than or equal to",
            "is smaller than max_model_len",
            "must be divisible by",
            "exceeds the total number of available GPUs",
            "cannot be greater than the max_model_len",
            "is greater than the derived max_model_len",
            "ValidationError",
            "is not a valid model identifier",
        ),
    ),
)


def classify_exit(code: int, log: str) -> LaunchFailure:
    """Name why an engine exited during start-up, from its exit status and log."""
    for kind, needles in _PATTERNS:
        for needle in needles:
            if needle in log:
                return LaunchFailure(kind, _excerpt(log, needle))
    if code == 2:
        return LaunchFailure(FailureKind.INVALID_ARGS, _last_lines(log))
    return LaunchFailure(
        FailureKind.STARTUP_CRASH,
        f"exited with status {code} during start-up:\n{_last_lines(log)}",
    )


def _excerpt(log: str, needle: str) -> str:
    for line in log.splitlines():
        if needle in line:
            return line.strip()[-1000:]
    return _last_lines(log)


def _last_lines(log: str, n: int = 6) -> str:
    return "\n".join(log.strip().splitlines()[-n:])


def gpu_memory_used_mib(devices: str) -> dict[int, int] | None:
    """Memory in use per GPU of ``devices`` ("0,1") by ``nvidia-smi``; None where there is no
    nvidia-smi (CPU machines, the embedded engine)."""
    import shutil

    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index,memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=15,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    wanted = {int(d) for d in devices.split(",") if d.strip().isdigit()}
    used = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        ok = len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit()
        if ok and int(parts[0]) in wanted:
            used[int(parts[0])] = int(parts[1])
    return used


def wait_gpu_memory_released(
    devices: str, *, limit_mib: int = 1024, timeout: float = 30.0, poll: float = 1.0
) -> str | None:
    """After an engine stops, wait until its GPUs hold less than ``limit_mib`` each (a driver
    slow to free memory makes the next launch on the set fail with an OOM that is not the
    config's). Returns None when released or unknowable, else what is still held."""
    end = time.monotonic() + timeout
    while True:
        used = gpu_memory_used_mib(devices)
        if used is None:
            return None
        held = {gpu: mib for gpu, mib in used.items() if mib >= limit_mib}
        if not held:
            return None
        if time.monotonic() >= end:
            return ", ".join(f"GPU {g}: {m} MiB" for g, m in sorted(held.items()))
        time.sleep(poll)
