"""Public trace formats read as they come; bad records named by file and line, or skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scoot.stress.formats import load, read_trace, to_jsonl
from scoot.stress.traces import TraceError


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_azure_csv(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "az.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:50.9951690,396,109\n",
    )
    reqs = load(p).requests
    assert [(r.input_length, r.output_length) for r in reqs] == [(374, 44), (396, 109)]
    assert reqs[0].timestamp == 0.0
    assert reqs[1].timestamp == pytest.approx(4.314579, abs=1e-6)


def test_burstgpt_csv(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "burst.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5,ChatGPT,472,18,490,Conversation log\n"
        "45,GPT-4,1087,251,1338,API log\n",
    )
    reqs = load(p).requests
    assert [(r.input_length, r.output_length, r.timestamp) for r in reqs] == [
        (472, 18, 0.0),
        (1087, 251, 40.0),
    ]


def test_mooncake_milliseconds_and_hash_ids(tmp_path: Path) -> None:
    line = {"timestamp": 3000, "input_length": 1100, "output_length": 5, "hash_ids": [0, 7, 9]}
    p = write(tmp_path, "mc.jsonl", json.dumps(line) + "\n")
    req = load(p, "mooncake").requests[0]
    assert (req.timestamp, req.hash_ids) == (3.0, (0, 7, 9))
    assert load(p).requests[0].timestamp == 3000.0  # internal format: seconds as written


def test_sharegpt_text_prompts(tmp_path: Path) -> None:
    data = [
        {
            "id": "a",
            "conversations": [
                {"from": "human", "value": "x" * 400},
                {"from": "gpt", "value": "y" * 80},
            ],
        },
        {"id": "b", "conversations": [{"from": "human", "value": "only one turn"}]},
    ]
    reqs = load(write(tmp_path, "sg.json", json.dumps(data))).requests
    assert len(reqs) == 1  # one-turn conversations are dropped, as vllm bench does
    assert (reqs[0].input_length, reqs[0].output_length) == (100, 20)
    assert reqs[0].prompt == "x" * 400


def test_bad_rows_name_file_and_line_or_are_counted(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        "az.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.68,374,44\n"
        "2023-11-16 18:15:47.00,lots,44\n"
        "2023-11-16 18:15:48.00,10,0\n"
        "2023-11-16 18:15:49.00,12,3\n",
    )
    with pytest.raises(TraceError, match=r"az\.csv:3: malformed row"):
        load(p)
    got = load(p, skip_bad=True)
    assert (len(got.requests), got.skipped) == (2, 2)
    assert "az.csv:4" in got.first_errors[1]


def test_unknown_csv_header_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match=r"t\.csv:1: unknown CSV header"):
        load(write(tmp_path, "t.csv", "a,b,c\n1,2,3\n"))


def test_convert_round_trips(tmp_path: Path) -> None:
    src = write(
        tmp_path,
        "burst.csv",
        "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "1,ChatGPT,10,3,13,Conversation log\n2.5,ChatGPT,20,4,24,Conversation log\n",
    )
    original = load(src).requests
    out = write(tmp_path, "out.jsonl", to_jsonl(original))
    assert read_trace(out) == original
