"""A tiny random-weight Llama with a locally trained tokenizer, for real vLLM on CPU (no hub).

Run with the vLLM venv's Python (transformers and tokenizers come with vLLM):

    .venv-vllm/bin/python tools/make_tiny_llama.py .cache/tiny-llama

2 layers, hidden 128, 4 heads, a 2,000-token BPE vocabulary trained on generated English-like
text and padded to 32,000 ids, max position 2,048: about 8 M parameters, built in seconds.
Outputs are gibberish, which does not matter: SCOOT's requests set ``max_tokens`` and
``ignore_eos``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(argv[0] if argv else ".cache/tiny-llama")
    out.mkdir(parents=True, exist_ok=True)
    # scoot.stress.traces' text-prompt words plus a few more, copied rather than imported:
    # this runs in vLLM's venv, where scoot is not installed.
    words = [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "for",
        "on",
        "that",
        "with",
        "as",
        "by",
        "at",
        "from",
        "this",
        "be",
        "are",
        "it",
        "or",
        "an",
        "was",
        "model",
        "server",
        "request",
        "token",
        "batch",
        "queue",
        "cache",
        "memory",
        "latency",
        "throughput",
        "engine",
        "prefill",
        "decode",
        "schedule",
        "block",
        "sequence",
        "prompt",
        "output",
    ]
    text = [" ".join(words[(i * 7 + j * 3) % len(words)] for j in range(60)) for i in range(800)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    special = ["<unk>", "<s>", "</s>"]
    tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=2000, special_tokens=special))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    # SCOOT's stress client sends token ids below 32,000 (valid for every supported model):
    # vLLM rejects ids beyond the tokenizer's vocabulary, so fill it up to that size.
    fast.add_tokens([f"<t{i}>" for i in range(32000 - len(fast))])
    fast.save_pretrained(out)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        torch_dtype="float32",
    )
    LlamaForCausalLM(config).save_pretrained(out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
