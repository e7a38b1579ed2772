#!/bin/bash
# Session 36: judge (single, A‴, B‴) and (A‴, B‴) against the shipped Si committee on validation only
# (rule: HISTORY.md, session 35): paired loss ratio at stage two's weights, 90 % interval below 1, and
# force-MAE ratio, point at most 1; of those that pass, the lower validation loss ships.
set -e
cd "$(dirname "$0")/../../.."  # the repository root
export JAX_COMPILATION_CACHE_DIR=runs/jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=2
V=runs/benchmarks/splits/mlearn-Si_valid.xyz
S=models/mlearn-Si-single.mlpot
D=runs/decide36; mkdir -p $D
# the committee shipped in session 35 (this script replaced it), rebuilt from its members' files
KEPT=examples/benchmarks/kept
K=$D/K.mlpot
.venv/bin/mlpot committee --overwrite $K $S $KEPT/mlearn-Si-55-A-35/model.mlpot $KEPT/mlearn-Si-55-B-35/model.mlpot
# A‴ and B‴ as kept (when it ran: runs/benchmarks/mlearn-Si-55-{A,B}-35/model.mlpot, the same files)
A=$KEPT/mlearn-Si-55-A-36/model.mlpot
B=$KEPT/mlearn-Si-55-B-36/model.mlpot
.venv/bin/mlpot committee --overwrite $D/AB.mlpot $A $B
.venv/bin/mlpot committee --overwrite $D/SAB.mlpot $S $A $B
for m in K:$K A:$A B:$B AB:$D/AB.mlpot SAB:$D/SAB.mlpot; do
  n=${m%%:*}; f=${m#*:}
  echo "== $n ($f)"
  .venv/bin/mlpot eval $f $V --by config_type --json $D/$n.json --plot $D/$n.png 2>&1 | grep -v "^mlpot eval: warning" | head -40
done
for n in AB SAB; do
  for metric in "loss --weights 2000 10 1000" "forces_mae"; do
    echo "== compare K vs $n ($metric)"
    .venv/bin/python examples/benchmarks/compare_models.py --metric $metric $V $K $D/$n.mlpot
  done
done
