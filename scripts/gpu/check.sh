#!/usr/bin/env bash
# The GPU check, run on an offline NVIDIA machine from the repository root with the CUDA builds
# that scripts/gpu/build.sh made in .gpu/ (README, "GPUs"). Everything it prints and
# measures lands in $OUT (default /tmp/vibeflow-gpu): nvidia-smi, the engine's parity and
# training tests on CUDA, a training run and a generation through the CLI, and
# `bench train --vs-peer` against PyTorch + PEFT on the same GPU.
#
#   scripts/gpu/check.sh [tests] [cli] [bench | bench-short | bench-bf16] [profile]
#                                                                   (default: tests cli bench)
#
# bench-short: only the two checkpointed shapes (4 x 256, 16 x 512), one round each, in f32
# and in bf16. bench-bf16: both shapes in bf16, the large one in f32 too. profile: our kernels' GPU times over one 16 x 512 bf16 training step (Nsight
# Compute), summed by kernel name into $OUT/kernels.txt.
set -u
STAGES=${*:-tests cli bench}
want() { [[ " $STAGES " == *" $1 "* ]]; }
OUT=${OUT:-/tmp/vibeflow-gpu}
mkdir -p "$OUT"
ROOT=$PWD
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

# The test binaries find their fixtures and the peers' scripts under the path they were built
# in; point that path here.
BUILT_IN=$(cat .gpu/built-in)
if [ "$BUILT_IN" != "$ROOT" ] && [ ! -e "$BUILT_IN" ]; then
    mkdir -p "$(dirname "$BUILT_IN")" && ln -s "$ROOT" "$BUILT_IN"
fi

# The binaries travel xz-compressed.
BIN=/tmp/vibeflow-gpu-bin
mkdir -p "$BIN"
for f in .gpu/bin/*.xz; do
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
        "$f" "$BIN/$(basename "$f" .xz)"
done
chmod +x "$BIN"/*

# cudarc loads libcuda, cuBLAS, cuRAND and NVRTC at run time; our binaries link libcudart.
libs=$(find /usr/local/cuda*/lib64 /opt /usr/lib/python3* /usr/local/lib/python3* \
    -name 'libcublas.so*' -o -name 'libcudart.so*' -o -name 'libcurand.so*' -o -name 'libnvrtc.so*' \
    2>/dev/null | xargs -r -n1 dirname | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${libs}/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >"$OUT/env.txt"
ldd "$BIN/vibeflow" | grep -E "cuda|cublas|curand|nvrtc|not found" | tee -a "$OUT/summary.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$OUT/summary.txt"

if want tests; then
    log "engine tests on CUDA (parity with PEFT, resume, QLoRA, checkpointing)"
    VIBEFLOW_TEST_DEVICE=cuda timeout 120 "$BIN/engine-it" --test-threads 1 parity:: train:: \
        >"$OUT/tests.log" 2>&1
    echo "exit $?" >>"$OUT/tests.log"
    grep -E "^test |test result|panicked|max \||exit" "$OUT/tests.log" | tee -a "$OUT/summary.txt"
fi

log "a SmolLM2-shaped model with random weights (the real weights cannot come along)"
MODEL=/tmp/smollm2-random
timeout 60 python3 scripts/gpu/random_model.py .gpu/smollm2 "$MODEL" 2>&1 | tail -1 | tee -a "$OUT/summary.txt"

export VIBEFLOW_HOME=/tmp/vibeflow-home
VF="$BIN/vibeflow"
if want cli; then
    log "train on CUDA through the CLI: 30 LoRA steps on a sample dataset"
    timeout 90 $VF --device cuda train --data assets/datasets/tech-qa.jsonl --base "$MODEL" \
        --out /tmp/run --steps 30 --batch 8 --lr 1e-3 --json >"$OUT/train.jsonl" 2>"$OUT/train.err"
    echo "exit $?" >>"$OUT/train.err"
    tail -c 1500 "$OUT/train.jsonl" | tee -a "$OUT/summary.txt"; tail -3 "$OUT/train.err" | tee -a "$OUT/summary.txt"

    log "generate on CUDA (f32 path, KV cache, the adapter just trained)"
    timeout 40 $VF --device cuda generate --model "$MODEL" --adapter /tmp/run/adapter \
        --prompt "How do I reset my password?" --max-tokens 24 --temperature 0 --json \
        >"$OUT/generate.json" 2>&1
    echo "exit $?" >>"$OUT/generate.json"
    tail -c 600 "$OUT/generate.json" | tee -a "$OUT/summary.txt"
fi

# One `bench train --vs-peer` run on CUDA; the arguments are added to it.
bench_train() {
    log "bench train --vs-peer on CUDA, $*"
    timeout 160 $VF --device cuda bench train --model "$MODEL" --vs-peer --steps 10 "$@" 2>&1 \
        | tee -a "$OUT/summary.txt"
}
if want bench-short; then
    for dtype in f32 bf16; do
        bench_train --rounds 1 --batch 4 --seq 256 --dtype $dtype
        bench_train --rounds 1 --batch 16 --seq 512 --dtype $dtype
    done
fi
if want bench-bf16; then
    bench_train --rounds 1 --batch 4 --seq 256 --dtype bf16
    bench_train --rounds 1 --batch 16 --seq 512 --dtype bf16
    bench_train --rounds 1 --batch 16 --seq 512 --dtype f32
fi
if want bench; then
    bench_train --rounds 2 --batch 4 --seq 256 --dtype f32
    bench_train --rounds 2 --batch 4 --seq 256 --dtype bf16
    bench_train --rounds 1 --batch 4 --seq 256 --checkpointing off --dtype bf16
    bench_train --rounds 1 --batch 16 --seq 512 --dtype f32
    bench_train --rounds 1 --batch 16 --seq 512 --dtype f32 --tf32
    bench_train --rounds 1 --batch 16 --seq 512 --dtype bf16
fi
if want profile; then
    log "kernel times of one 16 x 512 bf16 LoRA step (ncu; the warmup step is profiled)"
    NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
    timeout 200 "$NCU" --clock-control none --metrics gpu__time_duration.sum --print-units base --csv -c 6000 \
        --log-file "$OUT/ncu.csv" $VF --device cuda bench train --model "$MODEL" --steps 1 \
        --rounds 1 --batch 16 --seq 512 --dtype bf16 >"$OUT/ncu.log" 2>&1
    echo "exit $?" >>"$OUT/ncu.log"
    tail -3 "$OUT/ncu.log" | tee -a "$OUT/summary.txt"
    python3 - "$OUT/ncu.csv" >"$OUT/kernels.txt" <<'PY'
import csv, collections, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 14]
head, rows = rows[0], rows[1:]
name, unit, value = (head.index(c) for c in ("Kernel Name", "Metric Unit", "Metric Value"))
scale = {"nsecond": 1, "ns": 1, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6, "second": 1e9}
total, count = collections.Counter(), collections.Counter()
for r in rows:
    k = r[name].split("(")[0][:90]
    total[k] += float(r[value].replace(",", "")) * scale.get(r[unit], 1); count[k] += 1
all_ns = sum(total.values())
print(f"{len(rows)} kernels, {all_ns / 1e6:.1f} ms of GPU time")
for k, ns in total.most_common(40):
    print(f"{100 * ns / all_ns:5.1f} %  {ns / 1e6:8.2f} ms  {count[k]:6d}x  {k}")
PY
    head -25 "$OUT/kernels.txt" | tee -a "$OUT/summary.txt"
fi
log "done"
