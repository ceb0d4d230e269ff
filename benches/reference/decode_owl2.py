#!/usr/bin/env python3
"""Greedy decode rate of the ORIGINAL mPLUG-Owl2 code (transformers' `generate` with its KV cache), CPU, the
counterpart of `biqa bench`'s "greedy decode" row: (t(N) − t(1)) / (N − 1), where t(n) is the wall time of a
`generate` call that emits exactly n new tokens (min_new_tokens = max_new_tokens = n, so no stop token ends it early),
each the median of --repeats timed calls after one warm-up. The prompt is biqa's describe prompt,
"USER: <|image|>Describe the quality of this image. ASSISTANT:", with the image preprocessed as Q-Align does.

Usage: decode_owl2.py --model DIR --image IMG [--tokens 33] [--repeats 3] [--threads 2] [--dtype f32|bf16]
Prints one JSON object: {"ms_per_token", "t1_s", "tN_s", "tokens", "dtype", "torch", "threads"}.
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import score_owl2  # noqa: E402  (puts the original code on sys.path)
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from mplug_owl2.constants import IMAGE_TOKEN_INDEX  # noqa: E402
from mplug_owl2.mm_utils import tokenizer_image_token  # noqa: E402

PROMPT = "USER: <|image|>Describe the quality of this image. ASSISTANT:"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--tokens", type=int, default=33)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    scorer = score_owl2.Scorer(args.model, dtype)
    ids = tokenizer_image_token(PROMPT, scorer.tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt").unsqueeze(0)
    img = score_owl2.expand2square(Image.open(args.image).convert("RGB"), scorer.bg)
    pix = scorer.image_processor.preprocess([img], return_tensors="pt")["pixel_values"].to(dtype)

    def run(n):
        with torch.inference_mode():
            out = scorer.model.generate(
                ids, images=pix, do_sample=False, num_beams=1, max_new_tokens=n, min_new_tokens=n, use_cache=True
            )
        assert out.shape[1] - ids.shape[1] == n, (out.shape, ids.shape, n)

    def timed(n):
        run(n)
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            run(n)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    t1 = timed(1)
    tn = timed(args.tokens)
    print(json.dumps({
        "ms_per_token": round(1e3 * (tn - t1) / (args.tokens - 1), 2),
        "t1_s": round(t1, 4),
        "tN_s": round(tn, 4),
        "tokens": args.tokens,
        "dtype": args.dtype,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
