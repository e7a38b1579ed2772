#!/usr/bin/env bash
# Train, ship and evaluate every benchmark model. Run from the repository root:
#   examples/benchmarks/train_all.sh [name ...]     (default: all recipes, in priority order)
# Each recipe has a wall-time budget (max_time in its YAML); training runs niced
# so a shared machine stays usable. Output per recipe:
#   runs/benchmarks/<name>/            training run (metrics.csv, plots, checkpoints)
#   models/<name>.mlpot                the shipped model (best EMA parameters by validation loss)
#   examples/benchmarks/results/<name>.json   hold-out errors from `mlpot eval` (the numbers in BENCHMARKS.md)
set -euo pipefail
# Reuse compiled programs across runs, resumes and evaluations (compiles dominate short CPU runs).
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-runs/jax_cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=${JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS:-2}
cd "$(dirname "$0")/../.."
MLPOT=${MLPOT:-.venv/bin/mlpot}
PYTHON=${PYTHON:-.venv/bin/python}
# "ethanol" (the wide MACE) is for a GPU: name it to run it (22 CPU minutes would train it ~65 epochs). The shipped
# models/ethanol-single.mlpot then had two float32 fine-tunes on the CPU (init_from: 95 min at learning_rate 3e-4, then
# 140 min on one core at 1e-3), a 19-min warm restart on one H100 (init_from, learning_rate 3e-3), a third CPU
# fine-tune (115 min on one core at 3e-4), a fourth at batch_size 4 and a fifth at batch_size 2 (150 min each on one
# core at 5e-4); models/ethanol.mlpot is the committee (mlpot committee) of it and a second lineage trained from
# scratch at batch_size 4 (110 + 115 + 115 + 105 min on both cores, sessions 27-30, then
# 120 + 120 min on one core, sessions 31 and 33); every command is in
# examples/benchmarks/HISTORY.md.
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  names=(ethanol-cpu mlearn-Si 3bpa mlearn-Li ethanol-painn water mlearn-Ge-painn mlearn-Mo-painn mlearn-Ge mlearn-Mo)
fi
# Total minutes after a warm-restart resume (the shipped models had one: the
# first budget ends the cosine schedule; the resume restarts it at the
# time-fraction reached). Recipes not listed are trained once.
declare -A resume_minutes=([ethanol-cpu]=160 [mlearn-Si]=113 [mlearn-Ge]=112)
# Then a second warm restart, "stage two" as in MACE's recipes: from the given epoch on the energy
# weighs more (weight_schedule; the best model is chosen again among that stage's epochs). Values:
# total minutes, epochs before the switch, new energy_weight and, optionally, a peak learning rate
# for the resumed schedule (a gentler restart: the recipe's would jump the rate ~50x). The epochs
# are those of the shipped runs; "best" starts stage two from stage one's best checkpoint (chosen by
# validation) instead of its last: Mo's validation forces were best near epoch 111 at 5 Å and rose after
# it (at 5.5 Å the best is epoch 205, 54 min in; stage two adds 44 min either way).
declare -A stage_two=([ethanol-cpu]="335 2220 1000.0" [mlearn-Si]="173 340 2000.0 0.001" [mlearn-Ge]="180 319 2000.0 0.001"
                      [mlearn-Li]="90 182 2000.0 0.001" [mlearn-Mo]="98 best 1000.0 0.001")
# Last, a fine-tune ("stage three", session 10): a fresh run started from the stage-two model (init_from)
# with a Huber loss (delta 0.01: force errors count about linearly, as in the MAE targets), kept when it
# lowers the larger of E_MAE/E_target and F_MAE/F_target on validation (examples/benchmarks/HISTORY.md, session 10). Values: minutes,
# energy_weight, forces_weight, peak learning rate.
declare -A fine_tune=([mlearn-Si]="35 2000.0 30.0 0.0001" [mlearn-Mo]="35 1000.0 30.0 0.0001")
# Shipped under another name, where the recipe's name is a committee (mlpot committee) that this script does not
# build: models/ethanol.mlpot since session 28 (its members' commands in HISTORY.md), models/mlearn-Si.mlpot since
# session 35 (this recipe's model and two 5.5-Å runs, examples/benchmarks/kept/mlearn-Si-55-{A,B}-35).
declare -A ship_as=([ethanol]=ethanol-single [mlearn-Si]=mlearn-Si-single)
split_of() { local n="${1%-painn}"; n="${n%-cpu}"; echo "${n%-mace}"; }  # ethanol-painn, ethanol-cpu, water-mace, ... use the base splits
"$PYTHON" examples/benchmarks/make_splits.py $(for n in "${names[@]}"; do split_of "$n"; done | sort -u)
mkdir -p models examples/benchmarks/results
for name in "${names[@]}"; do
  echo "=== $name: training ($(date -u +%H:%M) UTC)"
  PYTHONUNBUFFERED=1 nice -n 10 "$MLPOT" train "examples/benchmarks/$name.yaml" --overwrite 2>&1 | tee "runs/benchmarks/$name.log"
  if [ -n "${resume_minutes[$name]:-}" ]; then
    PYTHONUNBUFFERED=1 nice -n 10 "$MLPOT" train "examples/benchmarks/$name.yaml" --resume \
      -o "max_time=${resume_minutes[$name]}" 2>&1 | tee "runs/benchmarks/$name.resume.log"
  fi
  if [ -n "${stage_two[$name]:-}" ]; then
    read -r minutes epoch weight rate <<< "${stage_two[$name]}"
    if [ "$epoch" = best ]; then  # keep stage one's last checkpoint beside it
      ckpt="runs/benchmarks/$name/checkpoints"
      cp "$ckpt/last.ckpt" "$ckpt/stage_one_last.ckpt" && cp "$ckpt/best.ckpt" "$ckpt/last.ckpt"
      epoch=$("$PYTHON" -c 'import sys; from mlpot.modelfile import from_bytes
print(from_bytes(open(sys.argv[1], "rb").read())[1]["epoch"])' "runs/benchmarks/$name/model.mlpot")
    fi
    PYTHONUNBUFFERED=1 nice -n 10 "$MLPOT" train "examples/benchmarks/$name.yaml" --resume \
      -o "max_time=$minutes" -o epochs=6000 -o "weight_schedule=[{epoch: $epoch, energy_weight: $weight}]" \
      ${rate:+-o "learning_rate=$rate"} 2>&1 | tee "runs/benchmarks/$name.stage2.log"
  fi
  run="runs/benchmarks/$name"
  if [ -n "${fine_tune[$name]:-}" ]; then
    read -r minutes weight forces rate <<< "${fine_tune[$name]}"
    PYTHONUNBUFFERED=1 nice -n 10 "$MLPOT" train "examples/benchmarks/$name.yaml" --overwrite -o "init_from=$run/model.mlpot" \
      -o "output_dir=$run-ft" -o "max_time=$minutes" -o epochs=6000 -o loss=huber -o "energy_weight=$weight" \
      -o "forces_weight=$forces" -o "learning_rate=$rate" 2>&1 | tee "runs/benchmarks/$name.ft.log"
    run="$run-ft"
  fi
  shipped=${ship_as[$name]:-$name}
  cp "$run/model.mlpot" "models/$shipped.mlpot"
  echo "=== $name: hold-out evaluation"
  test_split="runs/benchmarks/splits/$(split_of "$name")_test.xyz"
  by=(); grep -q -m1 config_type "$test_split" && by=(--by config_type)  # BENCHMARKS.md's table by structure kind
  "$MLPOT" eval "models/$shipped.mlpot" "$test_split" "${by[@]}" \
    --json "examples/benchmarks/results/$shipped.json" --plot "examples/benchmarks/results/$shipped.parity.png"
done
