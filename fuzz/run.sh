#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a time or a number of executions, under the memory limits that
# make an allocation the input does not justify a finding:
#   fuzz/run.sh --smoke              # CI: 10 000 executions per target with a fixed seed (deterministic for a
#                                    # given tree: the seed corpus and the binary decide every input)
#   fuzz/run.sh --time 20            # 20 s per target
#   fuzz/run.sh --runs 1000000       # the campaign recorded in fuzz/README.md
#   fuzz/run.sh --runs 1000000 image dataset
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")"
LIMIT=(-rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -max_len=65536)
mode=() ; targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) mode=(-max_total_time="$2"); shift 2 ;;
    --runs) mode=(-runs="$2"); shift 2 ;;
    --smoke) mode=(-runs=10000 -seed=1); shift ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#mode[@]} -gt 0 ] || mode=(-max_total_time=20)
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
bash seeds.sh >/dev/null
mkdir -p logs
cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  start=$(date +%s)
  # image: Q-Align's pad mode resamples a max(w, h)² canvas; a 463-byte 7424 × 30 JPEG takes 10–20 s under ASan on a
  # shared core (0.5 s in a release build, as long as Pillow takes): 60 s still catches a hang.
  extra=(); [ "$t" = image ] && extra=(-timeout=60)
  if cargo +nightly fuzz run -O "$t" "corpus/$t" -- "${mode[@]}" "${LIMIT[@]}" "${extra[@]}" -print_final_stats=1 \
      > "logs/$t.log" 2>&1; then status=ok; else status=FAILED; fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || echo "?")
  echo "$t: $status, $runs executions in $(( $(date +%s) - start )) s (log: fuzz/logs/$t.log)"
  [ "$status" = ok ] || { tail -40 "logs/$t.log"; exit 1; }
done
