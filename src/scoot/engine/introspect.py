"""Dump an installed engine's own argument parser as JSON (run with the *engine's* Python).

    ENGINE_PYTHON src/scoot/engine/introspect.py vllm|sglang [--check ARG ...]

Standalone on purpose: it imports only the engine and the standard library, so it runs in the
engine's environment (vLLM and SGLang pin their own numpy and torch), and SCOOT reads its
output. ``--check`` instead parses the given arguments with the engine's parser and prints
``{"ok": true}`` or ``{"ok": false, "error": ...}``: fail fast, before a GPU is spent.
``--check-json`` reads a JSON list of argument lists from stdin and prints one such result per
list, so one import of the engine checks several launches.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from typing import Any


def vllm_parser() -> argparse.ArgumentParser:
    from vllm.engine.arg_utils import AsyncEngineArgs

    try:
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError:  # older layouts
        from vllm.utils import FlexibleArgumentParser
    parser: argparse.ArgumentParser = AsyncEngineArgs.add_cli_args(FlexibleArgumentParser())
    return parser


def sglang_parser() -> argparse.ArgumentParser:
    from sglang.srt.server_args import ServerArgs

    parser = argparse.ArgumentParser()
    ServerArgs.add_cli_args(parser)
    return parser


def version(engine: str) -> str:
    from importlib import metadata

    for dist in (engine, f"{engine}-cpu"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(dist)
    return "unknown"


def dump(parser: argparse.ArgumentParser) -> list[dict[str, Any]]:
    groups = {}
    for g in parser._action_groups:
        for a in g._group_actions:
            groups[a.dest] = g.title
    out = []
    for a in parser._actions:
        if not a.option_strings or a.dest == "help":
            continue
        default = a.default
        if not isinstance(default, bool | int | float | str | type(None)):
            default = repr(default)
        out.append(
            {
                "flags": list(a.option_strings),
                "dest": a.dest,
                "default": default,
                "type": getattr(a.type, "__name__", None) if a.type else None,
                "choices": [str(c) for c in a.choices] if a.choices else None,
                "action": type(a).__name__,
                "group": groups.get(a.dest),
                "help": (a.help or "")[:300],
            }
        )
    return out


def check(parser: argparse.ArgumentParser, args: list[str]) -> dict[str, Any]:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            parser.parse_args(args)
    except SystemExit:
        return {"ok": False, "error": err.getvalue().strip().splitlines()[-1:]}
    return {"ok": True}


def main(argv: list[str]) -> int:
    engine = argv[0]
    parser = {"vllm": vllm_parser, "sglang": sglang_parser}[engine]()
    if len(argv) > 1 and argv[1] == "--check":
        print(json.dumps(check(parser, argv[2:])))
        return 0
    if len(argv) > 1 and argv[1] == "--check-json":
        print(json.dumps([check(parser, args) for args in json.loads(sys.stdin.read())]))
        return 0
    print(json.dumps({"engine": engine, "version": version(engine), "args": dump(parser)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
