#!/usr/bin/env bash
# The real-shape comparison with the original mPLUG-Owl2 code, rebuilt from nothing: biqa writes random, seeded
# checkpoints with the released widths (examples/make_checkpoint.rs: ViT-L/14-448, the abstractor, 2 LLaMA-7B
# layers), a bf16 `.bin` copy is saved by torch (as the released checkpoints are), and benches/reference/realshape.py
# runs `biqa score` beside the original code on each (whole process, load, steady state, peak RSS), then
# load_torch.py times from_pretrained alone. Results go to stdout and $OUT/results.md.
#
#   bash benches/realshape.sh                 # OUT=target/realshape ROUNDS=2 IMAGE=benches/data/rocket_1024x768.jpg
#   LLM_LAYERS=32 DTYPES=bf16 BIN=0 bash benches/realshape.sh   # the 7B in bf16 (16.4 GB; PyTorch side where it fits)
#
# Then the greedy decode rate of each directory, (t(N) − t(1)) / (N − 1) with N = DECODE_TOKENS (33; 0 skips it):
# `biqa bench` beside benches/reference/decode_owl2.py (transformers' generate on the original code). BIN=0 skips
# the `.bin` copy (it needs as much disk again as the bf16 directory).
#
# Needs: python3 with torch 2.x, transformers 4.31, sentencepiece, safetensors, icecream, einops, accelerate 0.21
# (the original code's imports), and the original code at $OWL2_SRC (default ../shared/reference/mPLUG-Owl2).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-target/realshape}
ROUNDS=${ROUNDS:-2}
IMAGE=${IMAGE:-benches/data/rocket_1024x768.jpg}
LLM_LAYERS=${LLM_LAYERS:-2}
DTYPES=${DTYPES:-f32 bf16}
BIN=${BIN:-1}
DECODE_TOKENS=${DECODE_TOKENS:-33}
export OWL2_SRC=${OWL2_SRC:-$(pwd)/../shared/reference/mPLUG-Owl2}
cargo build --release --bin biqa --example make_checkpoint
mkdir -p "$OUT"
for d in $DTYPES; do
  dir="$OUT/L$LLM_LAYERS-$d"
  [ -f "$dir/config.json" ] || target/release/examples/make_checkpoint --out "$dir" --dtype "$d" --llm-layers "$LLM_LAYERS"
done
bin="$OUT/L$LLM_LAYERS-bin16"
if [[ "$BIN" == 1 && " $DTYPES " == *" bf16 "* && ! -f "$bin/pytorch_model.bin" ]]; then
  mkdir -p "$bin"
  cp "$OUT/L$LLM_LAYERS-bf16"/*.json "$OUT/L$LLM_LAYERS-bf16/tokenizer.model" "$bin/"
  rm -f "$bin/model.safetensors.index.json"
  python3 - "$OUT/L$LLM_LAYERS-bf16" "$bin/pytorch_model.bin" <<'PY'
import glob, sys, torch, safetensors.torch as st
state = {}
for f in sorted(glob.glob(sys.argv[1] + "/*.safetensors")):
    state.update(st.load_file(f))
torch.save(state, sys.argv[2])
PY
fi
{
  echo "# Real-shape comparison, $(date -u +%F), LLM layers: $LLM_LAYERS"
  echo
  for d in $DTYPES; do
    python3 benches/reference/realshape.py --biqa target/release/biqa --model "$OUT/L$LLM_LAYERS-$d" \
      --image "$IMAGE" --rounds "$ROUNDS" --dtype "$d" --label "$d file, $d parameters:"
    echo
  done
  if [ -f "$bin/pytorch_model.bin" ]; then
    python3 benches/reference/realshape.py --biqa target/release/biqa --model "$bin" \
      --image "$IMAGE" --rounds "$ROUNDS" --dtype bf16 --label "bf16 .bin, bf16 parameters:"
    echo
  fi
  cases=()
  for d in $DTYPES; do cases+=("$OUT/L$LLM_LAYERS-$d:$d"); done
  [ -f "$bin/pytorch_model.bin" ] && cases+=("$bin:bf16")
  python3 benches/reference/load_torch.py --repeats 3 "${cases[@]}"
  if [ "$DECODE_TOKENS" -gt 1 ]; then
    echo
    echo "Greedy decode, (t$DECODE_TOKENS − t1)/$((DECODE_TOKENS - 1)), ms/token:"
    for d in $DTYPES; do
      b=$(target/release/biqa bench --model "$OUT/L$LLM_LAYERS-$d" --dtype "$d" --image "$IMAGE" --batch 1 \
        --repeats 3 --no-train --tokens "$DECODE_TOKENS" | grep 'greedy decode')
      t=$(python3 benches/reference/decode_owl2.py --model "$OUT/L$LLM_LAYERS-$d" --dtype "$d" --image "$IMAGE" \
        --tokens "$DECODE_TOKENS" --repeats 3 2>/dev/null | tail -1)
      echo "- $d: biqa $b; PyTorch $t"
    done
  fi
} | tee "$OUT/results.md"
