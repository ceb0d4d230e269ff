#!/usr/bin/env python3
"""PyTorch side of `cargo bench --bench decoder`: HF transformers LlamaForCausalLM, eager attention, f32, CPU,
the same shapes (tiny fixture config and the "small" config), prefill of 128 tokens (last-position logits) and
one decode step over a 128-token cache. Median of the timed runs, after warm-up.

Run: python3 benches/reference/decoder_torch.py [threads]   (torch + transformers; default 2 threads)
"""
import copy
import statistics
import sys
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

CONFIGS = {
    "tiny": dict(vocab_size=512, hidden_size=96, intermediate_size=160, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=4, rms_norm_eps=1e-6),
    "small": dict(vocab_size=32000, hidden_size=512, intermediate_size=1376, num_hidden_layers=8,
                  num_attention_heads=8, num_key_value_heads=8, rms_norm_eps=1e-6),
}


def timed(f, warmup=3, runs=20):
    for _ in range(warmup):
        f()
    t = []
    for _ in range(runs):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    return statistics.median(t) * 1e3


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    torch.set_num_threads(threads)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, threads {threads}")
    for name, cfg in CONFIGS.items():
        config = LlamaConfig(max_position_embeddings=2048, rope_theta=10000.0, **cfg)
        model = LlamaForCausalLM(config).eval()
        ids = torch.tensor([[(i * 7 + 3) % cfg["vocab_size"] for i in range(128)]])
        with torch.no_grad():
            # Last-position logits only (what generation and scoring need): the base model, then lm_head on the
            # last hidden state (= `logits_to_keep=1` of newer transformers, which 4.31 lacks).
            def last_logits(input_ids, past=None):
                out = model.model(input_ids, past_key_values=past, use_cache=True)
                return model.lm_head(out.last_hidden_state[:, -1:]), out.past_key_values

            prefill = timed(lambda: last_logits(ids))
            _, past = last_logits(ids)
            step_ids = torch.tensor([[5]])

            def step():
                # Work on a copy of the 128-token cache so that every run sees the same length.
                return last_logits(step_ids, copy.deepcopy(past))

            copy_cost = timed(lambda: copy.deepcopy(past))
            decode = timed(step) - copy_cost
        print(f"decoder_{name}/prefill_128            median {prefill:8.3f} ms")
        print(f"decoder_{name}/decode_step_cache_128  median {decode:8.3f} ms  (cache copy {copy_cost:.3f} ms subtracted)")


if __name__ == "__main__":
    main()
