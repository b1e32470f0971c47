#!/usr/bin/env bash
# Issue 17's CUDA checks in one run on a machine with an NVIDIA GPU; everything lands in $OUT.
# At most 8 minutes on an H200 with 16 cores: each phase has its own time limit (setup and the
# checkpoints about 40 s, the 1B bench 160 s, tests 120 s, the demo bench 110 s, anatomy 50 s).
#
#   bash benches/cuda_check.sh --fetch-wheels   # first, where a package registry answers: the
#                                               # wheels a GPU image may lack, into $WHEELS (.whl/)
#   bash benches/cuda_check.sh                  # then on the GPU machine, .whl/ carried along
#
# (a) The python3 with a CUDA torch ($PYTHON to choose another). When it has none, `pip install
#     torch==2.13.0` (PyPI's Linux x86-64 wheel is the CUDA build). When the engine's imports
#     (fairscale, msgspec, llama-models) are missing, they come from $WHEELS if it holds wheels
#     (a machine that reaches no registry), else `pip install -e '.[dev]'` from the registry.
#     Then random checkpoints of the Llama-3.2-1B shape and the demo model's (SmolLM2-135M).
# (b) benches/bench_generate.py --against none on the 1B shape (first: issue 17's goal is there),
#     then (c) the CUDA tests, then (b) again on the demo shape: bf16 and int8, graphs on and
#     off, one line each (batch-1 decode tok/s, % of the bandwidth roofline, the first run's
#     compile seconds, greedy tokens against graphs off).
# (c) The CUDA tests: tests/engine/test_cuda_step.py (the static step against the dynamic
#     forward in fp32 and bf16, graph replay against the step it captured, int8 against bf16,
#     Batch's greedy ids, the capture-failure fallback), with its CPU tests.
# (d) The step's anatomy on the 1B shape: Batch.step, the decoder's call, and a graph replay alone.
#
# Files in $OUT: summary.txt (the lines to read first), setup.log, tests.log, bench-*.log, anatomy.log.
# A dry run of the same phases without a GPU (CUDA tests skip, no anatomy):
#   DEVICE=cpu SHAPES=SmolLM2-135M-Instruct DTYPES=fp32 NEW_TOKENS=8 bash benches/cuda_check.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
WHEELS=${WHEELS:-.whl}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
SHAPES=${SHAPES:-Llama3.2-1B-Instruct SmolLM2-135M-Instruct}  # registry ids (random_checkpoint.py --like)
NEW_TOKENS=${NEW_TOKENS:-128}
DTYPES=${DTYPES:-bf16,int8}

if [ "${1:-}" = "--fetch-wheels" ]; then  # pure-Python wheels, and msgspec's for CPython ${PYVER:-3.12}
    mkdir -p "$WHEELS"
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "${PYVER:-3.12}" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$WHEELS" msgspec==0.23.0 llama-models==0.0.63 || exit 1
    "$PY" -m pip wheel -q --no-deps -w "$WHEELS" fairscale==0.4.13 || exit 1  # an sdist only: built here
    ls -l "$WHEELS"
    exit 0
fi

OUT=${OUT:-$PWD/cuda-check-out}
mkdir -p "$OUT"
WORK=${WORK:-/tmp/cuda-check}
mkdir -p "$WORK"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
elapsed() { echo "$(( $(date +%s) - START ))s"; }
START=$(date +%s)

# ---- (a) setup -------------------------------------------------------------------------------------
{
    if [ "$DEVICE" = cuda ] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        echo "no CUDA torch in $PY: pip install torch==2.13.0"
        "$PY" -m pip install -q torch==2.13.0
    fi
    missing=$("$PY" -c 'import importlib.util as u; print(" ".join(m for m in ("fairscale", "msgspec", "llama_models", "pytest") if u.find_spec(m) is None))')
    if [ -n "$missing" ]; then
        echo "missing: $missing"
        if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
            "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" "$WHEELS"/*.whl
        else
            "$PY" -m pip install -q -e '.[dev]'
        fi
    fi
} >"$OUT/setup.log" 2>&1
export PYTHONPATH="$PWD:$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export LLAMA_CPU_KERNELS=0  # the CPU kernels' build (a minute) is not what this run checks
if ! "$PY" -c "import torch, fairscale, msgspec, llama_models; assert '$DEVICE' == 'cpu' or torch.cuda.is_available()" >>"$OUT/setup.log" 2>&1; then
    say "setup failed: see setup.log"
    tail -5 "$OUT/setup.log"
    exit 1
fi
say "$("$PY" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "(no CUDA device)")' 2>&1 | tail -1)"
say "setup done at $(elapsed)"

read -r -a shapes <<<"$SHAPES"
for like in "${shapes[@]}"; do
    ckpt="$WORK/${like%-Instruct}-shape"
    [ -f "$ckpt/params.json" ] || "$PY" benches/random_checkpoint.py --like "$like" "$ckpt" >>"$OUT/setup.log" 2>&1
done
say "checkpoints done at $(elapsed)"

bench() {  # one shape's lines: bench LIKE SECONDS
    local like=$1 ckpt="$WORK/${1%-Instruct}-shape" log="$OUT/bench-${1%-Instruct}.log" rc
    timeout "$2" "$PY" benches/bench_generate.py --against none --model-dir "$ckpt" --device "$DEVICE" \
        --dtypes "$DTYPES" --graphs on,off --rounds 1 --batch 1 --prompt-len 128 --new-tokens "$NEW_TOKENS" >"$log" 2>&1
    rc=$?
    grep -E "^(model|.*graphs (on|off))" "$log" | tee -a "$SUMMARY"
    [ $rc -eq 0 ] || say "bench $like rc $rc: see $(basename "$log")"
    say "bench $like done at $(elapsed)"
}

# ---- (b) the bench on the first shape (the 1B) -----------------------------------------------------
bench "${shapes[0]}" 160

# ---- (c) the CUDA tests ----------------------------------------------------------------------------
timeout 120 "$PY" -m pytest -rs -p no:cacheprovider tests/engine/test_cuda_step.py >"$OUT/tests.log" 2>&1
say "tests (rc $?): $(grep -E '(passed|failed|error)' "$OUT/tests.log" | tail -1) at $(elapsed)"

# ---- (b) the bench on the other shapes (the demo's) ------------------------------------------------
for like in "${shapes[@]:1}"; do
    bench "$like" 110
done

# ---- (d) where a step's time goes, 1B shape --------------------------------------------------------
if [ "$DEVICE" != cuda ] || [ ! -f "$WORK/Llama3.2-1B-shape/params.json" ]; then
    say "anatomy skipped: it needs CUDA and the 1B shape"
    say "all done at $(elapsed)"
    exit 0
fi
timeout 50 "$PY" - "$WORK/Llama3.2-1B-shape" >"$OUT/anatomy.log" 2>&1 <<'EOF'
import sys, time
import torch
from llama_core.engine.checkpoint import load_model
from llama_core.engine.generation import Batch
from llama_core.engine.messages import GenParams
from llama_core.engine.parallel import init_model_parallel

init_model_parallel(backend="nccl")
for dtype in ("bf16", "int8"):
    model = load_model(sys.argv[1], max_seq_len=1024, max_batch_size=1, dtype=dtype, device="cuda")[0]
    batch = Batch(model)
    batch.add(0, list(range(1000, 1300)), GenParams(max_tokens=400))  # 203 steps in key bucket 512
    for _ in range(3):  # compile and capture
        batch.step()
    n = 200
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        batch.step()
    torch.cuda.synchronize()
    step_ms = (time.perf_counter() - start) / n * 1e3
    tokens, pos = torch.tensor([5], device="cuda"), torch.tensor([140], device="cuda")
    model._graphs(tokens, pos, 141)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        model._graphs(tokens, pos, 141)
    torch.cuda.synchronize()
    replay_ms = (time.perf_counter() - start) / n * 1e3
    g = next(iter(model._graphs.graphs.values())).graph
    events = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    events[0].record()
    for _ in range(n):
        g.replay()
    events[1].record()
    torch.cuda.synchronize()
    gpu_ms = events[0].elapsed_time(events[1]) / n
    print(f"1B {dtype}: Batch.step {step_ms:.3f} ms | decoder call (copies, replay, clone) {replay_ms:.3f} ms | "
          f"graph replay alone {gpu_ms:.3f} ms (GPU time) | compiled: {model._graphs.compiled}", flush=True)
    del model, batch
    torch.cuda.empty_cache()
EOF
say "anatomy (rc $?): $(grep -sE '^1B' "$OUT/anatomy.log" | tr '\n' ' ')"
say "all done at $(elapsed)"
