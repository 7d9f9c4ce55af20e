from __future__ import annotations

from pathlib import Path

import pytest

from scoot.stress.formats import read_trace
from scoot.stress.traces import HASH_BLOCK, TraceError, TraceRequest, heaviest, prompt_tokens


def test_reads_internal_format(tmp_path: Path) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text(
        '# comment\n{"timestamp": 0.5, "input_length": 10, "output_length": 2}\n\n'
        '{"input_length": 3, "output_length": 1, "hash_ids": [4, 5]}\n'
    )
    assert read_trace(p) == [TraceRequest(10, 2, 0.5), TraceRequest(3, 1, None, (4, 5))]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("{not json", "not valid JSON"),
        ('{"output_length": 3}', "missing 'input_length'"),
        ('{"input_length": 0, "output_length": 3}', "'input_length' must be a positive integer"),
        ('{"input_length": 2.5, "output_length": 3}', "positive integer"),
        ('{"input_length": 2, "output_length": true}', "positive integer"),
        ('{"input_length": 2, "output_length": 3, "timestamp": "x"}', "'timestamp'"),
        ('{"input_length": 2, "output_length": 3, "hash_ids": [1, "a"]}', "'hash_ids'"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path: Path, line: str, words: str) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text('{"input_length": 1, "output_length": 1}\n\n' + line + "\n")
    with pytest.raises(TraceError) as info:
        read_trace(p)
    assert str(info.value).startswith(f"{p}:3: ")
    assert words in str(info.value)


def test_empty_and_missing(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_text("# nothing\n")
    with pytest.raises(TraceError, match="no requests"):
        read_trace(p)
    with pytest.raises(TraceError, match="cannot read trace"):
        read_trace(tmp_path / "missing.jsonl")


def test_heaviest_keeps_trace_order() -> None:
    reqs = [TraceRequest(i, j) for i, j in [(5, 5), (100, 1), (1, 1), (50, 60), (7, 7)]]
    assert heaviest(reqs, 0.4) == [reqs[1], reqs[3]]
    assert heaviest(reqs, 1.0) == reqs


def test_prompts_have_exact_length_and_shared_prefixes() -> None:
    a = TraceRequest(HASH_BLOCK + 100, 1, hash_ids=(7, 8))
    b = TraceRequest(HASH_BLOCK + 50, 1, hash_ids=(7, 9))
    c = TraceRequest(300, 1)
    pa, pb, pc = prompt_tokens(a, 0), prompt_tokens(b, 1), prompt_tokens(c, 2)
    assert (len(pa), len(pb), len(pc)) == (a.input_length, b.input_length, 300)
    assert pa[:HASH_BLOCK] == pb[:HASH_BLOCK]
    assert pa[HASH_BLOCK : HASH_BLOCK + 50] != pb[HASH_BLOCK:]
    assert prompt_tokens(c, 2) == pc
    assert prompt_tokens(c, 3)[:16] != pc[:16]


def test_summarize_hand_computed() -> None:
    from scoot.stress.traces import summarize

    reqs = [TraceRequest(i, 10 * i, float(i), (1,) if i == 1 else ()) for i in (1, 2, 3, 4)]
    s = summarize(reqs)
    assert s["requests"] == 4
    assert s["input_length"] == pytest.approx(
        {"mean": 2.5, "p50": 2.5, "p90": 3.7, "p95": 3.85, "p99": 3.97, "max": 4.0}
    )
    out = s["output_length"]
    assert isinstance(out, dict) and out["max"] == 40.0
    assert s["span_s"] == 3.0
    assert s["rate_rps"] == 1.0
    assert s["with_hash_ids"] == 1
