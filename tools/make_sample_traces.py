"""Synthesise the paper's SQL, CLS and REC sample traces (BOT comes from the Azure trace).

The paper's Company-X traces are not public, so their length distributions are synthesised here,
seeded and documented (sample_traces/README.md). Each is log-normal around a median, clipped, with
the shared prompt prefixes such applications really send, as ``hash_ids`` blocks of 512 tokens so
prefix caching has something to hit:

- SQL (text-to-SQL): a database schema plus few-shot examples shared by every question to the
  same database (20 databases, Zipf-popular, 2 blocks = 1,024 tokens each), then the question
  and table samples (median 500 tokens); the answer is one SQL query (median 90 tokens).
- CLS (classification): one shared instruction block with the label set (512 tokens), then the
  text to classify (median 350 tokens); the answer is a label (1-8 tokens).
- REC (recommendation): one shared system block (512 tokens), then the user's history and
  candidate items (median 1,400 tokens); the answer is a ranked list with reasons (median 220).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

BLOCK = 512


def lognormal(rng: np.random.Generator, median: float, sigma: float, lo: int, hi: int) -> int:
    return int(np.clip(round(rng.lognormal(np.log(median), sigma)), lo, hi))


def sql(rng: np.random.Generator) -> dict[str, object]:
    db = int(min(rng.zipf(1.6), 20))
    prefix = [1000 + db * 10, 1000 + db * 10 + 1]
    tail = lognormal(rng, 500, 0.5, 50, 4000)
    out = lognormal(rng, 90, 0.5, 12, 600)
    return {"input_length": 2 * BLOCK + tail, "output_length": out, "hash_ids": prefix}


def cls(rng: np.random.Generator) -> dict[str, object]:
    tail = lognormal(rng, 350, 0.7, 20, 6000)
    return {
        "input_length": BLOCK + tail,
        "output_length": int(rng.integers(1, 9)),
        "hash_ids": [2000],
    }


def rec(rng: np.random.Generator) -> dict[str, object]:
    tail = lognormal(rng, 1400, 0.45, 200, 7000)
    out = lognormal(rng, 220, 0.4, 30, 1000)
    return {"input_length": BLOCK + tail, "output_length": out, "hash_ids": [3000]}


KINDS = {"sql": sql, "cls": cls, "rec": rec}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("sample_traces"))
    p.add_argument("--rows", type=int, default=2000)
    args = p.parse_args(argv)
    for i, (name, make) in enumerate(KINDS.items()):
        rng = np.random.default_rng(20250101 + i)
        lines = [
            f"# Synthetic {name.upper()} workload made by tools/make_sample_traces.py "
            "(distributions in its docstring and sample_traces/README.md). Public domain (CC0)."
        ]
        lines += [json.dumps(make(rng)) for _ in range(args.rows)]
        (args.out / f"{name}_synthetic.jsonl").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
