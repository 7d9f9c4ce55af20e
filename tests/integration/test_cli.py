"""The command line: clear one-line errors, and a short study end to end."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

SCOOT = [sys.executable, "-m", "scoot"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCOOT, *args], capture_output=True, text=True, timeout=300)


def test_broken_study_file_one_line(make_study: Callable[..., Path]) -> None:
    path = make_study()
    path.write_text(path.read_text().replace("budget = 4", "budget = -3"))
    out = run("tune", str(path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(path) in lines[0] and "budget" in lines[0]


def test_broken_trace_one_line(make_study: Callable[..., Path], tiny_trace: Path) -> None:
    path = make_study()
    with tiny_trace.open("a") as fh:
        fh.write('{"input_length": 12, "output_length": "many"}\n')
    out = run("tune", str(path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{tiny_trace}:41:" in lines[0] and "output_length" in lines[0]


def test_short_study_end_to_end(make_study: Callable[..., Path], scoot_home: Path) -> None:
    path = make_study(name="e2e", budget=3, robust=2)
    out = run("tune", str(path))
    assert out.returncode == 0, out.stderr
    assert "vllm serve llama-3.1-8b --max-model-len 4096" in out.stdout
    # The winner re-tested under two more arrival orders; its SLO is the worst of three.
    assert "worst case over 3 arrival orders" in out.stdout
    assert out.stdout.count("robustness ") >= 2
    status = run("study", "status", "e2e")
    assert "default" in status.stdout
    exported = run("export", "e2e", "--format", "json")
    assert '"max_num_seqs"' in exported.stdout
    again = run("tune", str(path))  # budget spent: nothing re-runs
    assert "continuing (3 evaluations done)" in again.stdout
    # The winner's two re-tests, and the default's two unless the default won.
    retests = status.stdout.count("robustness ")
    assert retests in (2, 4)
    if retests == 4:  # the default was re-tested too: the gain comes with its range, unless
        # the re-tests overturned the winner (the engine serves in real time, so a loaded
        # machine can make the default's re-tests the better ones; seen once in make check)
        assert (
            "gain over the default, across the re-tests: p95_latency" in status.stdout
            or "no configuration beat the default once re-tested" in status.stdout
        ), status.stdout
    assert len(list((scoot_home / "logs").rglob("*.log"))) == 3 + retests


def test_trace_inspect() -> None:
    sample = Path(__file__).parents[2] / "sample_traces" / "bot_azure_conv.jsonl"
    out = run("trace", "inspect", str(sample), "--json")
    assert out.returncode == 0, out.stderr
    import json

    summary = json.loads(out.stdout)
    assert summary["requests"] == 2000
    assert 0 < summary["input_length"]["p50"] < summary["input_length"]["p99"]
    table = run("trace", "inspect", str(sample))
    assert "input_length" in table.stdout and "2000 requests" in table.stdout


def test_trace_convert_and_skip_bad(tmp_path: Path) -> None:
    src = tmp_path / "azure.csv"
    src.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:47.0000000,oops,44\n"
        "2023-11-16 18:15:48.0000000,200,10\n"
    )
    out = tmp_path / "out.jsonl"
    bad = run("trace", "convert", str(src), "-o", str(out))
    assert bad.returncode == 2
    assert f"{src}:3: malformed row" in bad.stderr and not out.exists()
    ok = run("trace", "convert", str(src), "-o", str(out), "--skip-bad")
    assert ok.returncode == 0, ok.stderr
    assert "skipped 1 malformed record" in ok.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and '"input_length": 200' in lines[1]
    again = run("trace", "inspect", str(out), "--json")
    assert '"requests": 2' in again.stdout


def test_client_behind_schedule_pauses_the_study(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    """An impossible lateness limit makes every run invalid: 3 in a row pause the study, each
    recorded as abandoned (never as the config's failure), and the command says why."""
    study = make_study(name="behind", budget=6, duration=1.0, lateness=0.0001)
    out = run("tune", str(study))
    assert out.returncode == 2
    assert "fell behind its schedule in 3 runs in a row" in out.stderr
    status = run("study", "status", "behind")
    assert status.stdout.count("abandoned") == 3, status.stdout
    # No valid run of the default: nothing is compared with an invalid baseline.
    assert "best vs default" not in status.stdout


def test_a_stored_name_with_markup_is_shown_as_is(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    """A store written before names were checked may hold `x[/]`: every command shows it."""
    from scoot.jobs.store import Store
    from scoot.study import load_study

    store = Store(scoot_home / "scoot.db")
    store.open_study("x[/]", load_study(make_study()).to_json())
    store.close()
    listed = run("study", "list")
    assert listed.returncode == 0, listed.stderr
    assert "x[/]" in listed.stdout


def test_new_cancels_the_study_it_sets_aside(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    """`--new` keeps the old results under another name, and nobody runs them any more."""
    from scoot.domain import StudyState
    from scoot.jobs.store import Store

    path = make_study(name="again", budget=2)
    assert run("tune", str(path), "--detach").returncode == 0  # handed to (absent) workers
    out = run("tune", str(path), "--new", "--detach")
    assert out.returncode == 0, out.stderr
    store = Store(scoot_home / "scoot.db")
    aside = [s for s in store.studies() if s.name.startswith("again@")]
    assert len(aside) == 1 and aside[0].state is StudyState.CANCELLED
    current = store.study("again")
    assert current is not None and current.state is StudyState.RUNNING
    store.close()


def test_a_trial_that_cannot_be_built_pauses_the_study_once(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    """An engine command SCOOT cannot fill fails the same for every config: the first trial
    is abandoned, the study pauses with the reason, and nothing retries."""
    path = make_study(name="unbuildable", budget=3)
    text = path.read_text().replace(
        'kind = "embedded"', 'kind = "command"\ncommand = ["x", "{nonsense}"]'
    )
    path.write_text(text)
    out = run("tune", str(path))
    assert out.returncode == 2
    assert "is paused" in out.stderr and "could not run" in out.stderr, out.stderr
    status = run("study", "status", "unbuildable")
    assert "error: trial 0 could not run" in status.stdout
    assert "unknown placeholder" in status.stdout
    assert status.stdout.count("abandoned (error)") == 1


def test_a_corrupt_store_is_one_error_line(scoot_home: Path) -> None:
    scoot_home.mkdir(parents=True, exist_ok=True)
    (scoot_home / "scoot.db").write_bytes(b"this is not a database" * 100)
    for args in (("study", "list"), ("tui",)):
        out = run(*args)
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith(f"scoot: error: {scoot_home / 'scoot.db'}: not a SCOOT store")


def test_a_capacity_study_searches_the_rate_of_each_trial(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    extra = "\n[capacity]\ntarget = 0.9\nmax_steps = 3\n"
    path = make_study(name="cap", budget=2, objectives=("capacity",), extra=extra)
    text = path.read_text().replace("[stress]\n", "[stress]\ngoodput = { e2el_ms = 5000 }\n", 1)
    path.write_text(text)
    out = run("tune", str(path))
    assert out.returncode == 0, out.stderr
    status = run("study", "status", "cap")
    assert "capacity of the best:" in status.stdout
    assert "capacity/s" in status.stdout  # the objective has its own column
    assert "rate search: 8 req/s ->" in status.stdout  # the first probe is the study's rate
    from scoot.jobs.store import Store

    store = Store(scoot_home / "scoot.db")
    try:
        study = store.study("cap")
        assert study is not None
        trials = [t for t in store.trials(study.id) if t.metrics is not None]
        assert trials
        for t in trials:
            assert t.metrics is not None
            steps = t.metrics.rate_steps
            assert 1 <= len(steps) <= 3
            assert steps[0][0] == 8.0
            met = [r for r, a in steps if a >= 0.9]
            assert t.metrics.capacity == (max(met) if met else 0.0)
        steps_logged = [e for e in store.events(study.id) if e["kind"] == "rate-step"]
        assert len(steps_logged) == sum(len(t.metrics.rate_steps) for t in trials if t.metrics)
    finally:
        store.close()


def test_a_study_whose_slo_no_trial_meets_has_no_winner(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    path = make_study(name="slo", budget=2)
    path.write_text(
        path.read_text().replace("seed = 1\n", 'seed = 1\nslo = ["mean_ttft_ms <= 0.001"]\n', 1)
    )
    out = run("tune", str(path))
    assert out.returncode == 0, out.stderr
    status = run("study", "status", "slo")
    assert "no completed trial meets every SLO (mean_ttft_ms <= 0.001)" in status.stdout
    exported = run("export", "slo", "--format", "json")
    assert exported.returncode != 0
    assert "no completed trial meets every SLO" in exported.stderr


def test_a_two_objective_report_lists_the_fronts_points_against_the_default(
    make_study: Callable[..., Path], scoot_home: Path
) -> None:
    path = make_study(name="tt", budget=3, objectives=("ttft", "tpot"))
    out = run("tune", str(path))
    assert out.returncode == 0, out.stderr
    status = run("study", "status", "tt").stdout
    head = next(line for line in status.splitlines() if line.startswith("the front: "))
    n = int(head.split()[2])
    points = [line for line in status.splitlines() if line.startswith("  trial ")]
    assert 1 <= n == len(points) <= 3
    assert all("ttft " in p and "tpot " in p and "%" in p for p in points)
