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
import json
import time

import ase.io
import numpy as np
from ase import units

import md
import mlpot
from md.velocities import maxwell_boltzmann
from mlpot.modelfile import atomic_write


def summary(potential, atoms, times, totals, steps_done: int, dt_fs: float, seconds: float) -> dict:
    times, totals = np.asarray(times), np.asarray(totals)
    slope = np.polyfit(times, totals, 1)[0] / len(atoms) if len(times) > 2 else float("nan")
    return {
        "dtype": potential.config.dtype,
        "atoms": len(atoms),
        "steps": steps_done,
        "ps": steps_done * dt_fs * 1e-3,
        "drift_eV_per_atom_per_ps": float(slope),
        "etot_std_eV_per_atom": float(totals.std() / len(atoms)),
        "etot_range_eV": float(np.ptp(totals)),
        "steps_per_s": steps_done / seconds if seconds else float("nan"),
        "final_T_K": float(atoms.get_temperature()),
    }


def run(
    potential, atoms, steps: int, dt_fs: float, temperature: float, every: int, on_chunk=None, chunk: int = 1000
) -> dict:
    """NVE from Maxwell-Boltzmann velocities; ``on_chunk(partial summary, (times, totals))`` every
    ``chunk`` steps, so a long run that is stopped still leaves its figures so far."""
    atoms = atoms.copy()
    maxwell_boltzmann(atoms, temperature, seed=0)
    dyn = md.VelocityVerlet(atoms, dt_fs * units.fs, potential=potential)
    times, totals = [], []

    def record():
        times.append(len(totals) * every * dt_fs * 1e-3)  # ps
        totals.append(atoms.get_total_energy())

    dyn.attach(record, interval=every)
    seconds, done = 0.0, 0
    while done < steps:
        n = min(chunk, steps - done)
        start = time.perf_counter()
        dyn.run(n)
        seconds += time.perf_counter() - start
        done += n
        if on_chunk:
            on_chunk(summary(potential, atoms, times, totals, done, dt_fs, seconds), (times, totals))
    return summary(potential, atoms, times, totals, done, dt_fs, seconds)


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
    steps = round(args.ps / (args.dt * 1e-3))
    results = []

    def save(partial, series):
        """Progress line, and the JSON (with the E_tot series) rewritten atomically after every chunk."""
        print(
            f"  {partial['dtype']}: {partial['ps']:.2f} ps, drift {partial['drift_eV_per_atom_per_ps']:.2e} "
            f"eV/atom/ps, {partial['steps_per_s']:.1f} steps/s, T {partial['final_T_K']:.0f} K",
            flush=True,
        )
        if args.json:
            record = dict(partial, time_ps=list(series[0]), etot_eV=list(series[1]))
            atomic_write(args.json, json.dumps(results + [record], indent=1).encode())

    for dtype in args.dtype:
        result = run(potential.with_dtype(dtype), atoms, steps, args.dt, args.temperature, args.every, save)
        print(json.dumps(result))
        results.append(result)
    if args.json:
        atomic_write(args.json, json.dumps(results, indent=1).encode())
    return results


if __name__ == "__main__":
    main()
