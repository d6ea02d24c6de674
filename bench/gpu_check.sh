#!/usr/bin/env bash
# Every check that needs a GPU, as one command for a lent GPU machine (about 8 minutes on an
# H100). Once per checkout beforehand, the wheels that machine lacks (into ./.whl, 29 MB):
#   ../shared/tools/device-wheels.sh safetensors pillow pytest iniconfig pluggy packaging \
#     matplotlib contourpy cycler fonttools kiwisolver pyparsing python-dateutil six
# then one device run carrying [".whl"]:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD:$PWD/backends && \
#     bash bench/gpu_check.sh
# Each step writes its own file into $OUT (default /tmp/gpu-check) and has its own time limit,
# so one that hangs or fails leaves the others' results; record them in bench/RESULTS.md.
set -u
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-$PWD:$PWD/backends}
export PATH=$PATH:/usr/local/cuda/bin  # compute-sanitizer
# The backends are found by their entry points (pyproject.toml): without installing the
# project, a dist-info on the path declares them.
site=$(mktemp -d)  # a directory of its own (not a fixed path in a shared /tmp)
export PYTHONPATH=$site:$PYTHONPATH
mkdir -p "$site/advgraph_checkout-0.dist-info"
printf 'Metadata-Version: 2.1\nName: advgraph-checkout\nVersion: 0\n' \
    >"$site/advgraph_checkout-0.dist-info/METADATA"
printf '[advgraph.backends]\ntorch = advgraph_torch.backend:TorchBackend\ncupy = %s\n' \
    advgraph_cupy.backend:CupyBackend >"$site/advgraph_checkout-0.dist-info/entry_points.txt"
step() {  # step NAME SECONDS COMMAND...: the command's output into $OUT/NAME.txt
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    echo "$name: exit $? in $((SECONDS - t0)) s" | tee -a "$OUT/summary.txt"
}
{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import torch, cupy; print('torch', torch.__version__, 'cupy', cupy.__version__, \
'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion())"
} >"$OUT/device.txt" 2>&1
python3 -m advgraph backends >>"$OUT/device.txt" 2>&1
cat "$OUT/device.txt"
# the GPU tests: cuda executor vs twins, graph replay vs eager, parity, the sweep engine
step gpu_tests 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests/backend/test_cupy_gpu.py \
    tests/backend/test_cupy_objective_training.py
# compute-sanitizer: every launch of a few cupy iterations (toy1d and the conditional ring),
# out-of-bounds accesses (memcheck) and shared-memory races (racecheck)
train=(python3 -m advgraph train --backend cupy --device cuda --set training.stop.steps=5
       --set training.sample_grid=null --set "training.checkpoint={steps: 5}" --set training.log_every=5)
step memcheck 120 compute-sanitizer --tool memcheck --error-exitcode 9 \
    "${train[@]}" specs/ring2d-cgan.yaml --name sanitized-memcheck
step racecheck 120 compute-sanitizer --tool racecheck --error-exitcode 9 \
    "${train[@]}" specs/toy1d.yaml --name sanitized-racecheck
# speed: the cupy graph against torch eager / compiled / graphed, then sweeps of the MNIST nets
step cupy_vs_torch 150 python3 bench/cupy_vs_torch.py --device cuda --spec specs/mnist.yaml \
    --iters 100 --warmup 10
step sweep_cupy 120 python3 bench/sweep.py --specs mnist-nets --members 1,16 --steps 20 \
    --backend cupy --device cuda
step sweep_torch 120 python3 bench/sweep.py --specs mnist-nets --members 1,16 --steps 20 \
    --backend torch --device cuda
cat "$OUT/summary.txt"
tail -n 5 "$OUT"/gpu_tests.txt "$OUT"/sweep_*.txt
