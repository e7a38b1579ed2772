"""Total-energy drift of a long NVE run with mlpot's own engine, float32 vs float64 network.

    python benchmarks/nve_drift.py MODEL STRUCTURE [--ps 10] [--dt 0.5] [--temperature 300]
                                   [--dtype float32 float64] [--json FILE]

For each float policy (the model's parameters cast to that precision; positions
and MD state are float64 either way) it runs NVE velocity Verlet from the
first frame with Maxwell-Boltzmann velocities (seeded, zero momentum) and
prints: drift = slope of a linear fit of E_tot(t), in eV/atom/ps; the standard
deviation of E_tot; steps/s. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import ase.io
import jax
import numpy as np
from ase import units

import md
import mlpot
from md.simulation import maxwell_boltzmann


def with_dtype(potential: mlpot.Potential, dtype: str) -> mlpot.Potential:
    params = jax.tree_util.tree_map(lambda p: np.asarray(p, dtype), potential.params)
    return mlpot.Potential(dataclasses.replace(potential.config, dtype=dtype), params)


def run(potential, atoms, steps: int, dt_fs: float, temperature: float, every: int) -> dict:
    atoms = atoms.copy()
    maxwell_boltzmann(atoms, temperature, seed=0)
    dyn = md.VelocityVerlet(atoms, dt_fs * units.fs, potential=potential)
    times, totals = [], []

    def record():
        times.append(len(totals) * every * dt_fs * 1e-3)  # ps
        totals.append(atoms.get_total_energy())

    dyn.attach(record, interval=every)
    start = time.perf_counter()
    dyn.run(steps)
    seconds = time.perf_counter() - start
    totals = np.asarray(totals)
    slope = np.polyfit(times, totals, 1)[0] / len(atoms)
    return {"dtype": potential.config.dtype, "atoms": len(atoms), "steps": steps, "ps": steps * dt_fs * 1e-3,
            "drift_eV_per_atom_per_ps": float(slope), "etot_std_eV_per_atom": float(totals.std() / len(atoms)),
            "etot_range_eV": float(np.ptp(totals)), "steps_per_s": steps / seconds,
            "final_T_K": float(atoms.get_temperature())}


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("structure")
    parser.add_argument("--ps", type=float, default=10.0)
    parser.add_argument("--dt", type=float, default=0.5, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--every", type=int, default=20, help="record E_tot every N steps")
    parser.add_argument("--dtype", nargs="+", default=["float32", "float64"])
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    atoms = ase.io.read(args.structure, 0)
    potential = mlpot.load(args.model)
    steps = int(round(args.ps / (args.dt * 1e-3)))
    results = []
    for dtype in args.dtype:
        result = run(with_dtype(potential, dtype), atoms, steps, args.dt, args.temperature, args.every)
        print(json.dumps(result))
        results.append(result)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
