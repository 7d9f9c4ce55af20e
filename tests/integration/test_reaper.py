"""Nothing an engine starts outlives it or the tuner: the reaper leads the engine's group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from helpers import wait_for
from scoot.engine.launcher import EngineProcess, free_port

# An "engine" that starts a helper of its own (as vLLM starts workers and a resource tracker),
# writes that grandchild's pid, then serves forever or exits with status 3.
ENGINE = """
import signal, subprocess, sys
helper = subprocess.Popen(["sleep", "300"])
open(sys.argv[1], "w").write(str(helper.pid))
if sys.argv[2] == "exit":
    sys.exit(3)
signal.pause()  # serve until stopped
"""

# A "tuner" that launches that engine and sleeps: the test SIGKILLs it.
TUNER = """
import signal, sys
from pathlib import Path
from scoot.engine.launcher import EngineProcess
EngineProcess([sys.executable, "-c", sys.argv[1], sys.argv[2], "serve"], gpu_set="0",
              port=1, log_path=Path(sys.argv[3]))
signal.pause()  # until the test kills it
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def grandchild(path: Path) -> int:
    wait_for(lambda: path.exists() and path.read_text().strip().isdigit(), 30, "the helper")
    return int(path.read_text())


def test_the_tuner_killed_takes_the_engines_helpers_with_it(tmp_path: Path) -> None:
    pid_file = tmp_path / "helper.pid"
    tuner = subprocess.Popen(
        [sys.executable, "-c", TUNER, ENGINE, str(pid_file), str(tmp_path / "e.log")]
    )
    helper = grandchild(pid_file)
    assert alive(helper)
    os.kill(tuner.pid, signal.SIGKILL)
    tuner.wait()
    wait_for(lambda: not alive(helper), 30, "the engine's helper to stop with the tuner")


def test_an_engine_that_exits_leaves_nothing_and_keeps_its_status(tmp_path: Path) -> None:
    pid_file = tmp_path / "helper.pid"
    engine = EngineProcess(
        [sys.executable, "-c", ENGINE, str(pid_file), "exit"],
        gpu_set="0",
        port=free_port(),
        log_path=tmp_path / "e.log",
    )
    helper = grandchild(pid_file)
    assert engine.proc.wait(timeout=60) == 3
    assert not alive(helper)
    engine.stop(1)
