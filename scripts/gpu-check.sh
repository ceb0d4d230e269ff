#!/usr/bin/env bash
# One command for a GPU host: biqa's GPU tests, then `biqa bench` on a 7B-shaped random bf16 checkpoint, with the
# peak GPU memory sampled by nvidia-smi; one table at the end. Runs from the folder scripts/build-cuda.sh lays out
# (dist/biqa-cuda: biqa, biqa-tests/gpu, lib/, fixtures/, this script), copied to the host as is:
#
#   tar xJf biqa-cuda.tar.xz && biqa-cuda/gpu-check.sh [--layers 32] [--work DIR] [--skip-tests]
#
# --layers: LLM layers of the random checkpoint (32 = the 7B, 16.4 GB in bf16; written once into --work, default
# /tmp/biqa-gpu-check, and reused). The kernel autotune results persist in ~/.cache/cubecl between runs (burn's
# `persistence`), so a second run shows the warm-cache cold start. Aims at < 10 minutes on one H100/H200.
# Needs: the NVIDIA driver (libcuda.so.1), NVRTC no newer than the driver (libnvrtc.so.13 for driver 580) and the
# CUDA headers cuda_fp16.h / cuda_bf16.h; found in /usr/local/cuda*, or a pip install of nvidia-cuda-nvrtc /
# nvidia-cuda-runtime (site-packages/nvidia/*), or wherever CUDA_PATH points.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
LAYERS=32
WORK=/tmp/biqa-gpu-check
TESTS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) LAYERS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --skip-tests) TESTS=0; shift ;;
    *) echo "gpu-check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$WORK"

# Libraries: the folder's own, the CUDA toolkit's, and pip's nvidia packages.
libs=("$HERE/lib")
for d in /usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu; do
  [ -d "$d" ] && libs+=("$d")
done
while IFS= read -r f; do libs+=("$(dirname "$f")"); done < <(
  python3 - 2>/dev/null <<'EOF'
import glob, site, sys
for base in site.getsitepackages() + [site.getusersitepackages()]:
    for f in glob.glob(base + "/nvidia/*/lib/libnvrtc.so*"):
        print(f)
EOF
)
LD_LIBRARY_PATH=$(IFS=:; echo "${libs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LD_LIBRARY_PATH
if [ -z "${CUDA_PATH:-}" ]; then
  for d in /usr/local/cuda /usr/local/cuda-* /opt/cuda "${libs[@]/%\/lib/}"; do
    if [ -f "$d/include/cuda_fp16.h" ]; then export CUDA_PATH=$d; break; fi
  done
fi
echo "== gpu-check: CUDA_PATH=${CUDA_PATH:-<none: NVRTC will not find cuda_fp16.h>}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "(no nvidia-smi)"
for l in libcuda.so.1 libnvrtc.so.13 libnvrtc.so.12; do
  found=no
  for d in "${libs[@]}"; do [ -e "$d/$l" ] && found=$d; done
  echo "   $l: $found"
done

status=0
if [ "$TESTS" = 1 ]; then
  echo "== GPU tests (tests/gpu.rs: tiny-owl2 and train-step fixtures, f32 and bf16)"
  BIQA_FIXTURES=$HERE/fixtures "$HERE/biqa-tests/gpu" --test-threads 1 2>&1 | tail -40 || status=1
  gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | wc -l)
  if [ "$gpus" -ge 2 ]; then
    echo "== data-parallel training over two GPUs (burn all-reduce) vs accumulation on one"
    BIQA_FIXTURES=$HERE/fixtures "$HERE/biqa-tests/gpu" --ignored all_reduce 2>&1 | tail -20 || status=1
  else
    echo "== (one GPU: the two-GPU all-reduce test does not run)"
  fi
fi

echo "== biqa bench: ${LAYERS}-layer 7B-shaped random checkpoint, bf16, cuda:0"
peak_file=$WORK/peak_mib
( peak=0; while true; do
    v=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 2>/dev/null | head -1)
    [ -n "$v" ] && [ "$v" -gt "$peak" ] 2>/dev/null && peak=$v && echo "$peak" > "$peak_file"
    sleep 0.2
  done ) &
sampler=$!
image=$HERE/fixtures/tiny-owl2/images/astronaut_96x96.png
start=$(date +%s.%N)
"$HERE/biqa" --device cuda --dtype bf16 bench --model "$WORK/owl2-7b-${LAYERS}l-bf16" \
  --random-llm-layers "$LAYERS" --image "$image" --batch 32 --tokens 65 --repeats 5 \
  --json "$WORK/bench.json" || status=1
end=$(date +%s.%N)
kill "$sampler" 2>/dev/null
echo "| peak GPU memory (nvidia-smi, whole GPU) | $(cat "$peak_file" 2>/dev/null || echo '?') MiB |"
echo "| whole bench process | $(python3 -c "print(f'{$end - $start:.1f}')") s |"
echo "(JSON: $WORK/bench.json; CPU flags of the host: $(grep -m1 -o 'avx512[a-z_0-9]*\|amx[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' '))"
exit $status
