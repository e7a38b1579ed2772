#!/bin/bash
# Session 35: judge A'', B'', (A'',B''), (shipped,A'',B'') on Si validation only (rule: HISTORY.md, session 34).
set -e
cd "$(dirname "$0")/../../.."  # the repository root
export JAX_COMPILATION_CACHE_DIR=runs/jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=2
V=runs/benchmarks/splits/mlearn-Si_valid.xyz
K=models/mlearn-Si-single.mlpot  # the shipped model then; models/mlearn-Si.mlpot is the committee this chose
D=runs/decide35; mkdir -p $D
A=examples/benchmarks/kept/mlearn-Si-55-A-35/model.mlpot  # kept copies: session 36 continued the runs/ folders
B=examples/benchmarks/kept/mlearn-Si-55-B-35/model.mlpot
.venv/bin/mlpot committee --overwrite $D/AB.mlpot $A $B
.venv/bin/mlpot committee --overwrite $D/KAB.mlpot $K $A $B
for m in K:$K A:$A B:$B AB:$D/AB.mlpot KAB:$D/KAB.mlpot; do
  n=${m%%:*}; f=${m#*:}
  echo "== $n ($f)"
  .venv/bin/mlpot eval $f $V --by config_type --json $D/$n.json --plot $D/$n.png 2>&1 | grep -v "^mlpot eval: warning" | head -40
done
for n in A B AB KAB; do
  echo "== compare K vs $n (forces_mae)"
  f=$A; [ $n = B ] && f=$B; [ $n = AB ] && f=$D/AB.mlpot; [ $n = KAB ] && f=$D/KAB.mlpot
  .venv/bin/python examples/benchmarks/compare_models.py --metric forces_mae $V $K $f
done
