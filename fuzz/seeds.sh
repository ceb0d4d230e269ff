#!/usr/bin/env bash
# Builds the seed corpora of every target from the repository's fixtures (tests/fixtures, examples), into
# fuzz/corpus/<target>/. Idempotent; the corpora are not committed (they grow while fuzzing).
set -euo pipefail
cd "$(dirname "$0")"
F=../tests/fixtures
# c TARGET FILE...: copies each file as <parent folder>-<name>.
c() {
  local t=$1; shift; mkdir -p "corpus/$t"
  for f in "$@"; do cp "$f" "corpus/$t/$(basename "$(dirname "$f")")-$(basename "$f" | tr ' ' _)"; done
}

# Small safetensors seeds (the fixtures' files are MBs; their headers plus tiny bodies keep executions fast).
mkdir -p corpus/safetensors corpus/shard_index
python3 - "$F" <<'PY'
import json, struct, sys, pathlib
fix = pathlib.Path(sys.argv[1])
out = pathlib.Path("corpus/safetensors")
def st(header, body=b""):
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + body
seeds = {
    "f32.safetensors": st({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}}, bytes(range(24))),
    "mixed.safetensors": st({"__metadata__": {"format": "pt"},
                             "a": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]},
                             "b": {"dtype": "F16", "shape": [2, 2], "data_offsets": [8, 16]},
                             "c": {"dtype": "I64", "shape": [1], "data_offsets": [16, 24]},
                             "d": {"dtype": "F64", "shape": [], "data_offsets": [24, 32]},
                             "e": {"dtype": "U8", "shape": [0, 3], "data_offsets": [32, 32]}}, bytes(32)),
}
# The header of every fixture checkpoint, with the tensors cut down to one element each.
for p in sorted(fix.rglob("*.safetensors")):
    raw = p.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    small, off = {}, 0
    for k, v in list(header.items())[:24]:
        if k == "__metadata__":
            small[k] = v
            continue
        size = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "F64": 8, "I32": 4, "U8": 1, "BOOL": 1}.get(v["dtype"], 4)
        small[k] = {"dtype": v["dtype"], "shape": [1] * len(v["shape"]), "data_offsets": [off, off + size]}
        off += size
    seeds[f"{p.parent.name}-{p.stem}.safetensors"] = st(small, bytes(off))
for name, data in seeds.items():
    (out / name).write_bytes(data)
idx = pathlib.Path("corpus/shard_index")
(idx / "two.json").write_text(json.dumps({"metadata": {"total_size": 64}, "weight_map": {"a": "a.safetensors", "b": "b.safetensors"}}))
(idx / "one.json").write_text(json.dumps({"weight_map": {"a": "a.safetensors", "b": "a.safetensors"}}))
(idx / "missing.json").write_text(json.dumps({"weight_map": {"a": "c.safetensors"}}))
PY
c shard_index "$F"/owl2-components/index.json
c torch_pickle "$F"/checkpoint-cases/*.bin "$F"/tiny-owl2/pytorch_model.bin
c config_json "$F"/tiny-owl2/config.json "$F"/owl2-components/config.json "$F"/tiny-llama-gqa/config.json
c tokenizer_model "$F"/tiny-owl2/tokenizer.model
c tokenizer_json "$F"/tiny-owl2/tokenizer.json
c image "$F"/pillow-cases/images/* "$F"/tiny-owl2/images/* "$F"/owl2-components/*.png
c train_toml ../examples/train.toml
# Dataset seeds carry the reader's selector byte in front (see fuzz_targets/dataset.rs).
mkdir -p corpus/dataset
sel() { printf "\\x$(printf %02x "$1")" > "corpus/dataset/$2"; cat "$3" >> "corpus/dataset/$2"; }
D="$F"/data-cases
sel 0 koniq "$D"/koniq10k_scores_and_distributions.csv
sel 0 koniq-bad "$D"/bad_koniq10k_scores_and_distributions.csv
sel 2 koniq-sets "$D"/koniq10k_distributions_sets.csv
sel 3 kadid "$D"/dmos.csv
sel 4 pyiqa "$D"/meta_info_LIVEChallengeDataset.csv
sel 5 qalign "$D"/qalign_test.json
sel 6 conversations "$D"/qinstruct_labels.json
sel 8 spaq "$D/MOS and Image attribute scores.xlsx"
sel 9 csiq "$D"/csiq.DMOS.xlsx
sel 10 livec-images "$D"/AllImages_release.mat
sel 10 livec-mos "$D"/AllMOS_release.mat
sel 10 livec-mos-z "$D"/AllMOS_release_compressed.mat
for t in corpus/*; do echo "$(basename "$t"): $(ls "$t" | wc -l) seeds"; done
