#!/bin/bash
# Session 37: M4 continues M3 (kept/ethanol-M3-34) for 120 minutes on one core; rule: HISTORY.md, ethanol,
# session 34.  Usage: bash examples/benchmarks/sessions/eth37.sh CORE
set -e
cd "$(dirname "$0")/../../.."  # the repository root
CORE=$1
export JAX_COMPILATION_CACHE_DIR=runs/jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=2
exec taskset -c $CORE .venv/bin/mlpot train examples/benchmarks/ethanol.yaml \
  -o init_from=examples/benchmarks/kept/ethanol-M3-34/model.mlpot -o batch_size=4 -o learning_rate=0.002 \
  -o seed=10 -o test_file=null -o max_time=120 -o output_dir=runs/benchmarks/ethanol-M4
