#!/usr/bin/env python3
"""Times the original mPLUG-Owl2 code's load of checkpoint directories on CPU: the same `Scorer.__init__` as
score_owl2.py (slow tokenizer, CLIPImageProcessor, MPLUGOwl2LlamaForCausalLM.from_pretrained(low_cpu_mem_usage=True,
torch_dtype=...)), after the imports, repeated in one process; the side-by-side reference of `cargo bench --bench load`.

Usage: load_torch.py [--repeats 5] [--threads 2] DIR:DTYPE...   (DTYPE f32 or bf16)
Prints one Markdown row per case (median, min and max seconds) and a JSON line with every sample.
"""
import argparse
import gc
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

T0 = time.perf_counter()
import torch  # noqa: E402

from score_owl2 import Scorer  # noqa: E402 (imports the original code)

IMPORTS_S = time.perf_counter() - T0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("cases", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {"imports_s": IMPORTS_S, "cases": {}}
    print(f"imports (torch, transformers, the original code): {IMPORTS_S:.2f} s\n")
    print("| directory | dtype | from_pretrained median (min–max) |\n|---|---|---|")
    for case in args.cases:
        path, dtype = case.rsplit(":", 1)
        samples = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            scorer = Scorer(path, torch.bfloat16 if dtype == "bf16" else torch.float32)
            samples.append(time.perf_counter() - t0)
            del scorer
            gc.collect()
        out["cases"][case] = samples
        print(f"| {path} | {dtype} | {statistics.median(samples):.2f} s ({min(samples):.2f}–{max(samples):.2f}) |")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
