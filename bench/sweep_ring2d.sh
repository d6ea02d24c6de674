#!/usr/bin/env bash
# ring2d over 16 seeds per loss (the paper's, least squares, hinge) and per learning rate, each
# loss's 16 seeds (and the 4 × 16 of the learning rates) one sweep, trained as one batched
# program, then `eval --modes` over each sweep: mean ± s.e. of the modes covered.
#   bash bench/sweep_ring2d.sh RUNS_DIR [STEPS]      (3000 steps: the objectives bench's)
set -euo pipefail
runs=${1:?usage: bench/sweep_ring2d.sh RUNS_DIR [STEPS]}
steps=${2:-3000}
here=$(cd "$(dirname "$0")/.." && pwd)
ag() { echo "$ advgraph $*"; python -m advgraph "$@" --runs-dir "$runs"; }
sweep() {  # NAME SPEC [ARGS…]: a sweep, trained once (resumed if it was interrupted)
  local name=$1 spec=$2; shift 2
  if [ -f "$runs/$name/sweep.json" ]; then
    grep -q '"status": "finished"' "$runs/$name/sweep.json" || ag sweep --resume "$name"
  else
    ag sweep "$here/specs/$spec" --seeds 0-15 --name "$name" --set training.stop.steps="$steps" \
      --set training.sample_grid=null "$@"
  fi
  ag eval "$name" --modes
}
sweep ring-ns ring2d.yaml
sweep ring-ls ring2d.yaml --set training.loss=least_squares \
  --set 'discriminator.layers[3].type=linear'
sweep ring-hinge ring2d-hinge.yaml
sweep ring-lr ring2d.yaml --vary training.optimizer.lr=0.002,0.001,0.0005,0.0002
