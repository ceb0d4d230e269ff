#!/usr/bin/env python3
"""Q-Align scores with the ORIGINAL mPLUG-Owl2 code (X-PLUG/mPLUG-Owl @ 0f3068f, mPLUG-Owl2/mplug_owl2, unmodified),
on CPU, float32.

Mirrors Q-Align's q_align/evaluate/scorer.py (QAlignScorer) exactly, except for the dtype/device (f32 on CPU instead
of fp16 on CUDA) and the loader call (from_pretrained(low_cpu_mem_usage=True, torch_dtype=float32), as the tiny-owl2
fixture's expected values were produced):
  prompt  "USER: How would you rate the quality of this image?\n<|image|>\nASSISTANT: The quality of the image is"
  ids     tokenizer_image_token(prompt, tok, IMAGE_TOKEN_INDEX)            (slow LlamaTokenizer, use_fast=False)
  words   [tok(w)["input_ids"][1] for w in excellent good fair poor bad]
  images  expand2square(img, tuple(int(x*255) for x in proc.image_mean)) -> proc.preprocess(list)["pixel_values"]
  logits  model(ids.repeat(B,1), images=pix)["logits"][:, -1, words]
  score   softmax(logits) @ [1, .75, .5, .25, 0]  (0-1);  softmax(logits) @ [5,4,3,2,1]  (1-5)

Usage: score_owl2.py --model DIR [--batch-size 8] [--threads 2] [--dtype f32|bf16] [--time] IMG...

(A copy of ../shared/reference/score_owl2.py for the benchmarks, with --dtype added: bf16 loads with
torch_dtype=torch.bfloat16 and runs the model in bf16, as a released checkpoint is meant to run. The original code is
found through $OWL2_SRC, default ../../../shared/reference/mPLUG-Owl2 from this folder.)
Prints a JSON array [{"image", "score", "score_1_5", "probs": {word: p}}] on stdout (biqa score --json's format).
With --time, a JSON object with the timings goes to stderr (and the scores are computed one image at a time).
"""
import argparse
import json
import os
import statistics
import sys
import time

T_PROCESS0 = time.perf_counter()

HERE = os.path.dirname(os.path.abspath(__file__))
OWL2_SRC = os.environ.get("OWL2_SRC", os.path.join(HERE, "..", "..", "..", "shared", "reference", "mPLUG-Owl2"))
sys.path.insert(0, OWL2_SRC)  # the original package `mplug_owl2`, unmodified

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AutoTokenizer, CLIPImageProcessor  # noqa: E402

from mplug_owl2.constants import IMAGE_TOKEN_INDEX  # noqa: E402
from mplug_owl2.mm_utils import tokenizer_image_token  # noqa: E402
from mplug_owl2.model import MPLUGOwl2LlamaForCausalLM  # noqa: E402

PROMPT = "USER: How would you rate the quality of this image?\n<|image|>\nASSISTANT: The quality of the image is"
WORDS = ["excellent", "good", "fair", "poor", "bad"]


def expand2square(pil_img, background_color):
    # verbatim from Q-Align's scorer.py (= mplug_owl2.mm_utils.expand2square)
    width, height = pil_img.size
    if width == height:
        return pil_img
    elif width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    else:
        result = Image.new(pil_img.mode, (height, height), background_color)
        result.paste(pil_img, ((height - width) // 2, 0))
        return result


class Scorer:
    def __init__(self, model_dir, dtype=torch.float32):
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=False)
        self.image_processor = CLIPImageProcessor.from_pretrained(model_dir)
        self.model = MPLUGOwl2LlamaForCausalLM.from_pretrained(
            model_dir, low_cpu_mem_usage=True, torch_dtype=dtype
        ).eval()
        self.dtype = dtype
        self.preferential_ids_ = [id_[1] for id_ in self.tokenizer(WORDS)["input_ids"]]
        self.weight_tensor = torch.tensor([1, 0.75, 0.5, 0.25, 0.0], dtype=torch.float32)
        self.weight_1_5 = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float32)
        self.input_ids = tokenizer_image_token(PROMPT, self.tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt").unsqueeze(0)
        self.bg = tuple(int(x * 255) for x in self.image_processor.image_mean)

    def __call__(self, paths):
        # Q-Align's scorer takes PIL images; its iqa_eval opens them with .convert('RGB') (a no-op for RGB files)
        images = [Image.open(p).convert("RGB") for p in paths]
        images = [expand2square(img, self.bg) for img in images]
        with torch.inference_mode():
            image_tensor = self.image_processor.preprocess(images, return_tensors="pt")["pixel_values"].to(self.dtype)
            output_logits = self.model(self.input_ids.repeat(image_tensor.shape[0], 1), images=image_tensor)["logits"][
                :, -1, self.preferential_ids_
            ]
            probs = torch.softmax(output_logits.float(), -1)
            return probs @ self.weight_tensor, probs @ self.weight_1_5, probs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--time", action="store_true")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("images", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    scorer = Scorer(args.model, torch.bfloat16 if args.dtype == "bf16" else torch.float32)
    t_load = time.perf_counter() - t0

    results = []
    if not args.time:
        bs = max(1, args.batch_size)
        for i in range(0, len(args.images), bs):
            chunk = args.images[i : i + bs]
            s, s15, p = scorer(chunk)
            results += list(zip(chunk, s.tolist(), s15.tolist(), p.tolist()))
    else:
        # first image cold (the warm-up), then every image again, one at a time (batch 1), each timed
        t0 = time.perf_counter()
        scorer(args.images[:1])
        t_first = time.perf_counter() - t0
        per = []
        for path in args.images:
            t0 = time.perf_counter()
            s, s15, p = scorer([path])
            per.append(time.perf_counter() - t0)
            results.append((path, s.item(), s15.item(), p[0].tolist()))
        timing = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "imports_s": round(T_IMPORTED - T_PROCESS0, 4),
            "load_s": round(t_load, 4),
            "first_image_s": round(t_first, 4),
            "steady_per_image_median_s": round(statistics.median(per), 4),
            "steady_per_image_min_s": round(min(per), 4),
            "steady_per_image_s": [round(x, 4) for x in per],
        }
        print(json.dumps(timing), file=sys.stderr)

    out = [
        {"image": path, "score": s, "score_1_5": s15, "probs": dict(zip(WORDS, p))} for path, s, s15, p in results
    ]
    print(json.dumps(out))


T_IMPORTED = time.perf_counter()

if __name__ == "__main__":
    main()
