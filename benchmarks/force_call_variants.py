"""MD force call (energy + forces, active-edge compaction included) for PaiNN size variants, A/B in one process.

    taskset -c 1 .venv/bin/python benchmarks/force_call_variants.py --case water:1536 [--rounds 6]

Each variant's force function (the one the MD engine runs) is compiled once;
then the variants are timed in turn, 5 calls each, for ``--rounds`` rounds,
and the best round is kept, so that slow drifts of a shared machine's load hit
every variant alike. Random weights (speed does not depend on them); same
structures as benchmarks/run.py. Prints ms per call and atom-evaluations/s.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import mlpot  # noqa: F401  (first: host memory settings, x64)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))

import jax
import jax.numpy as jnp
import structures
from common import ENERGY_SCALE
from run_mlpot_ase import MODEL_CONFIGS

from md.forces import potential_forces
from mlpot import ModelConfig, Potential

VARIANTS = {  # label: PaiNN hyperparameters (features x interactions, Bessel functions)
    "16x2 b16 (painn-small)": MODEL_CONFIGS["painn-small"][1],
    "16x2 b8 (painn-fast)": MODEL_CONFIGS["painn-fast"][1],
    "16x1 b8": {"features": 16, "num_interactions": 1, "num_basis": 8},
    "8x2 b8": {"features": 8, "num_interactions": 2, "num_basis": 8},
    "24x2 b8": {"features": 24, "num_interactions": 2, "num_basis": 8},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="water:1536", help="system:atoms (see structures.py)")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    system, num_atoms = args.case.split(":")
    try:
        atoms = structures.build(system, int(num_atoms))
    except FileNotFoundError as err:  # the water box is in ../shared/data (LGPL: not in the repository)
        print(f"{err}\nwithout it, time copper: --case cu:4000", file=sys.stderr)
        return 2
    positions, cell = jnp.asarray(atoms.positions), jnp.asarray(atoms.cell.array)
    species = tuple(sorted({int(z) for z in atoms.numbers}))
    compiled = {}
    for label, hyperparameters in VARIANTS.items():
        config = ModelConfig("painn", 5.0, species, hyperparameters, energy_scale=(ENERGY_SCALE,) * len(species))
        forces = potential_forces(Potential.create(config), atoms, skin=0.5)
        force_args = forces.build(atoms.positions, atoms.cell.array)
        call = jax.jit(forces.force_fn).lower(positions, cell, force_args).compile()
        jax.block_until_ready(call(positions, cell, force_args))
        compiled[label] = (call, force_args)
    best = dict.fromkeys(compiled, float("inf"))
    for _ in range(args.rounds):
        for label, (call, force_args) in compiled.items():
            start = time.perf_counter()
            for _ in range(5):
                jax.block_until_ready(call(positions, cell, force_args))
            best[label] = min(best[label], (time.perf_counter() - start) / 5)
    print(f"{args.case}, energy + forces per call, best of {args.rounds} rounds of 5:")
    for label, seconds in best.items():
        print(f"  {label:24s} {1e3 * seconds:8.1f} ms  {len(atoms) / seconds:9.0f} atom-evaluations/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
