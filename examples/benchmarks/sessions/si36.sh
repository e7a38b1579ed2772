#!/bin/bash
# Session 36: Si A‴/B‴ continue A″/B″ (runs/benchmarks/mlearn-Si-55-{A,B}-35) for 100 more minutes, one core;
# rule: HISTORY.md, session 35.  Usage: bash examples/benchmarks/sessions/si36.sh SEED CORE A|B
set -e
cd "$(dirname "$0")/../../.."  # the repository root
S=$1; CORE=$2; L=$3
export JAX_COMPILATION_CACHE_DIR=runs/jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=2
exec taskset -c $CORE .venv/bin/mlpot train examples/benchmarks/mlearn-Si.yaml --resume -o cutoff=5.5 -o model.avg_num_neighbors=32.82 \
  -o seed=$S -o test_file=null -o epochs=6000 -o energy_weight=2000.0 -o learning_rate=0.001 -o max_time=200 \
  -o init_from=examples/benchmarks/kept/mlearn-Si-55-$L-32/model.mlpot -o output_dir=runs/benchmarks/mlearn-Si-55-$L-35
