#!/usr/bin/env python3
"""Real-shape CPU comparison, side by side: `biqa score` against the original mPLUG-Owl2 code (score_owl2.py here) on
the same checkpoint directory, image and machine. What a user feels: whole-process time for one image (imports, load
and the first image included), load time, steady per-image time at batch 1, and peak RSS (each process's own
maximum resident set, from wait4).

Usage:
  realshape.py --biqa target/release/biqa --model DIR --image IMG [--rounds 2] [--dtype f32|bf16] [--label TEXT]

Make DIR with ../../../shared/reference/make_realshape.py (4.5 GB f32 safetensors at the real widths, 2 LLM layers);
a `.bin` copy for the PyTorch-format load: `torch.save(safetensors.torch.load_file(...), "pytorch_model.bin")` next
to the other files. Rounds alternate the two sides; medians are reported. Prints a Markdown table and one JSON line.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run_rss(cmd):
    """Runs cmd under wait4: (wall seconds, peak RSS bytes, stdout, stderr)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.stdout.read(), p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"{cmd[0]} failed ({status}): {err.decode()[-2000:]}")
    return wall, ru.ru_maxrss * 1024, out.decode(), err.decode()


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    keep = sorted(x for x in flags if x.startswith(("avx", "amx", "fma")))
                    return name, " ".join(keep)
    except OSError:
        pass
    return platform.processor(), ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--biqa", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--label", default="")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    py = [sys.executable, os.path.join(HERE, "score_owl2.py"), "--model", args.model, "--threads", str(args.threads)]
    py += ["--dtype", args.dtype]
    rs = [args.biqa, "score", "--model", args.model, "--dtype", args.dtype]
    three = [args.image] * 3
    rows = {k: [] for k in ("b_whole", "b_rss", "b_load", "b_steady", "p_whole", "p_rss", "p_load", "p_steady")}
    for _ in range(args.rounds):
        w, rss, _, _ = run_rss(rs + [args.image])
        rows["b_whole"].append(w)
        rows["b_rss"].append(rss)
        _, _, _, err = run_rss(rs + ["--timings", "--batch-size", "1"] + three)
        t = json.loads(err.strip().splitlines()[-1])
        rows["b_load"].append(t["load_s"])
        rows["b_steady"].append(statistics.median(b["s"] for b in t["batches"][1:]))
        w, rss, _, _ = run_rss(py + [args.image])
        rows["p_whole"].append(w)
        rows["p_rss"].append(rss)
        _, _, _, err = run_rss(py + ["--time"] + three)
        t = json.loads([x for x in err.strip().splitlines() if x.startswith("{")][-1])
        rows["p_load"].append(t["load_s"])
        rows["p_steady"].append(statistics.median(t["steady_per_image_s"][1:]))
    med = {k: statistics.median(v) for k, v in rows.items()}
    name, flags = cpu_flags()
    size = sum(os.path.getsize(os.path.join(args.model, f)) for f in os.listdir(args.model))
    print(f"{args.label} {args.model} ({size / 1e9:.2f} GB), --dtype {args.dtype}, {name}, flags: {flags}, "
          f"{os.cpu_count()} CPUs, medians of {args.rounds} rounds, {time.strftime('%Y-%m-%d')}\n")
    print("| what | biqa | PyTorch | ratio |\n|---|---|---|---|")
    for label, b, p, unit in [
        ("whole process, 1 image", "b_whole", "p_whole", "s"),
        ("load (`from_pretrained` / `Owl2::from_dir`)", "b_load", "p_load", "s"),
        ("per image, steady state, batch 1", "b_steady", "p_steady", "s"),
        ("peak RSS, 1 image", "b_rss", "p_rss", "GB"),
    ]:
        scale = 1e9 if unit == "GB" else 1
        print(f"| {label} | {med[b] / scale:.2f} {unit} | {med[p] / scale:.2f} {unit} | **{med[b] / med[p]:.2f}** |")
    print(json.dumps({"rounds": rows, "median": med, "cpu": name, "flags": flags, "dtype": args.dtype}))


if __name__ == "__main__":
    main()
