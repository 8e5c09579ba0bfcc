#!/usr/bin/env bash
# Builds the CUDA binaries for scripts/gpu/check.sh on a machine without a GPU (or without the
# CUDA toolkit): nvcc, the CUDA headers and libcudart come from NVIDIA's PyPI wheels, and the
# driver, cuBLAS, NVRTC and cuRAND (which candle links by name) are stand-in libraries with the
# real sonames and cudarc's symbol names, so the GPU machine's own libraries load. Puts the
# engine's integration-test binary and the `vibeflow` CLI, stripped, into .gpu/bin, with the
# SmolLM2 shape (config and tokenizer, from the installed default GGUF) in .gpu/smollm2.
# What .gpu holds is what the GPU machine needs besides the repository (~22 MB).
#
#   scripts/gpu/build.sh            # CUDA 13.0 (driver 580 or newer), compute capability 90
#   CUDA_COMPUTE_CAP=80 CUDA_WHEELS=13.0 scripts/gpu/build.sh
#
# The toolkit version must not be newer than the GPU driver's (its PTX would not load).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
V=${CUDA_WHEELS:-13.0}
TK=${CUDA_TOOLKIT_DIR:-$HOME/.cache/vibeflow/cuda-$V}
if [ ! -x "$TK/nvidia/cu13/bin/nvcc" ]; then
    python3 -m pip install -q --no-deps --target "$TK" "nvidia-cuda-nvcc==$V.*" \
        "nvidia-cuda-runtime==$V.*" "nvidia-cuda-cccl==$V.*" "nvidia-nvvm==$V.*" "nvidia-cuda-crt==$V.*"
fi
export CUDA_HOME=$TK/nvidia/cu13 CUDA_PATH=$TK/nvidia/cu13
ln -sf libcudart.so.13 "$CUDA_HOME/lib/libcudart.so"
export PATH=$CUDA_HOME/bin:$PATH LIBRARY_PATH=$CUDA_HOME/lib:${LIBRARY_PATH:-}
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}

# Stand-ins to link against: every function cudarc declares, under the CUDA 13 sonames.
cudarc=$(cargo metadata --format-version 1 --features engine/cuda | python3 -c 'import json,sys; print([p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"] == "cudarc"][0])')
cudarc=$(dirname "$cudarc")/src
stubs=$TK/stubs
mkdir -p "$stubs"
for spec in driver:cuda:libcuda.so.1 cublas:cublas:libcublas.so.13 cublaslt:cublasLt:libcublasLt.so.13 \
    nvrtc:nvrtc:libnvrtc.so.13 curand:curand:libcurand.so.10; do
    IFS=: read -r module lib soname <<<"$spec"
    grep -o 'fn [A-Za-z][A-Za-z0-9_]*' "$cudarc/$module/sys/mod.rs" | sort -u \
        | sed 's/^fn \(.*\)/void \1(void) {}/' >"$stubs/$lib.c"
    cc -shared -fPIC -Wl,-soname,"$soname" -o "$stubs/lib$lib.so" "$stubs/$lib.c"
done
export LIBRARY_PATH=$stubs:$LIBRARY_PATH
# A target folder of its own: the CUDA build shares nothing with the CPU one.
export CARGO_TARGET_DIR=${CUDA_TARGET_DIR:-$ROOT/target/cuda}

mkdir -p .gpu/bin
test_bin=$(cargo test --release -p engine --features cuda --test it --no-run --message-format=json \
    | python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")][-1])')
cargo build --release -p cli --features cuda
# Stripped and xz-compressed (the CUDA kernels make each binary ~70 MB; ~10 MB compressed).
rm -f .gpu/bin/*
for pair in "$test_bin:engine-it" "$CARGO_TARGET_DIR/release/vibeflow:vibeflow"; do
    strip -o ".gpu/bin/${pair##*:}" "${pair%%:*}"
    xz -T0 -9 ".gpu/bin/${pair##*:}"
done
echo "$ROOT" >.gpu/built-in

# The default model's shape: config and tokenizer, written by transformers from the GGUF.
gguf=${VIBEFLOW_DEFAULT_GGUF:-$HOME/.cache/vibeflow/SmolLM2-135M-Instruct.Q4_1.gguf}
python3 - "$gguf" .gpu/smollm2 <<'EOF'
import os, sys
from transformers import AutoConfig, AutoTokenizer
gguf, out = sys.argv[1], sys.argv[2]
d, f = os.path.dirname(os.path.abspath(gguf)), os.path.basename(gguf)
AutoConfig.from_pretrained(d, gguf_file=f).save_pretrained(out)
AutoTokenizer.from_pretrained(d, gguf_file=f).save_pretrained(out)
EOF
du -sh .gpu
