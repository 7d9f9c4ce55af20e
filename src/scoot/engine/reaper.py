"""``python -m scoot.engine.reaper ARGV...``: run an engine so that nothing it starts outlives it.

The launcher starts this small process as the leader of the engine's process group; it starts
the engine in that group and becomes the *subreaper* of everything below it (Linux
``PR_SET_CHILD_SUBREAPER``), so the engine's workers and trackers (vLLM's resource tracker, say)
stay its descendants even when the engine dies first. It ends the whole group:

- when the engine exits by itself (a failed start-up): what it left behind is stopped, and the
  engine's exit status is this process's;
- when it receives SIGTERM, SIGINT or SIGHUP: the launcher's stop, or the launcher's death
  (``PR_SET_PDEATHSIG`` delivers SIGTERM when the thread that launched it dies, even by
  SIGKILL), so a killed tuner leaves no engine process behind, grandchildren included.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
GRACE_S = 10.0
"""After SIGTERM to the group, how long its processes get before SIGKILL."""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print("usage: python -m scoot.engine.reaper ENGINE_ARGV...", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    stopping: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        if not stopping:
            stopping.append(signum)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(0, signal.SIGTERM)  # the engine and all it started; not this one

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    if os.getppid() == 1:
        return 1  # the launcher died before this process could even start the engine
    try:
        engine = subprocess.Popen(args)
    except OSError as exc:
        print(f"cannot start {args[0]}: {exc.strerror}", file=sys.stderr, flush=True)
        return 127
    code = engine.wait()
    if not stopping:
        on_signal(signal.SIGTERM, None)  # the engine ended by itself: so does what it left
    _reap(time.monotonic() + GRACE_S)
    return code if code >= 0 else 128 - code


def _reap(deadline: float) -> None:
    """Wait for every other process of the group to end; SIGKILL what is left at the
    deadline (orphans are this subreaper's children, so they are reaped here)."""
    while _others():
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        if time.monotonic() > deadline:
            for pid in _others():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + GRACE_S
        time.sleep(0.05)


def _others() -> list[int]:
    """Live processes of this process group but this one (zombies do not count)."""
    me, group = os.getpid(), os.getpgrp()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(entry.name))
    return found


if __name__ == "__main__":
    sys.exit(main())
