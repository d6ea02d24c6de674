#!/usr/bin/env bash
# Table 1's protocol (Goodfellow et al. 2014, §5) on a trained run, with the references to read
# G against: every kept checkpoint of G, training examples used as samples, and k-means centres
# (k = 10,000) of the training set; Parzen (σ from validation) and the domain metrics; then
# Figures 2 and 3 of the last checkpoint. bench/RESULTS.md has the figures for Fashion-MNIST:
#   advgraph train specs/fashion-mnist.yaml --name fm-full      # hours on 2 CPU cores
#   bash bench/table1.sh fm-full                                 # about 15 minutes more
# Usage: bench/table1.sh RUN [extra options for every command, e.g. --runs-dir DIR]
set -euo pipefail
run=${1:?usage: bench/table1.sh RUN [--runs-dir DIR]}
shift
ag=${ADVGRAPH:-advgraph}
"$ag" eval "$run" "$@" --parzen --fid --prdc --score --all-checkpoints
for b in train kmeans; do
  "$ag" eval "$run" "$@" --parzen --fid --prdc --score --baseline "$b"
done
"$ag" sample "$run" "$@" --nearest --rows 8 --cols 6       # Figure 2
"$ag" interpolate "$run" "$@" --rows 6 --steps 10          # Figure 3
"$ag" plot "$run" "$@"                                     # losses, monitor, evaluation history
