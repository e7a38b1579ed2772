#!/bin/bash
# Session 35: Si A″/B″ from kept/ (the checkpoints in runs/ were lost with the machine); rule: HISTORY.md, session 34.
# Usage: bash examples/benchmarks/sessions/si35.sh SEED CORE A|B   (A: seed 0, core 0; B: seed 1, core 1)
set -e
cd "$(dirname "$0")/../../.."  # the repository root
S=$1; CORE=$2; L=$3
export JAX_COMPILATION_CACHE_DIR=runs/jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=2
exec taskset -c $CORE .venv/bin/mlpot train examples/benchmarks/mlearn-Si.yaml -o cutoff=5.5 -o model.avg_num_neighbors=32.82 \
  -o seed=$S -o test_file=null -o epochs=6000 -o energy_weight=2000.0 -o learning_rate=0.001 -o max_time=100 \
  -o init_from=examples/benchmarks/kept/mlearn-Si-55-$L-32/model.mlpot -o output_dir=runs/benchmarks/mlearn-Si-55-$L-35
