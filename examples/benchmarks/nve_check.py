"""NVE stability of a shipped model: velocity Verlet through ``mlpot.Calculator`` (ASE's integrator).

    python examples/benchmarks/nve_check.py models/ethanol.mlpot runs/benchmarks/splits/ethanol_test.xyz \\
        --temperature 500 --ps 10 [--json runs/benchmarks/nve_ethanol.json]

Starts from the first frame of the file with Maxwell-Boltzmann velocities
(seeded), zero momentum and, for a molecule, angular momentum, scaled to the
temperature asked over the degrees of freedom that move (``md.velocities.
thermal_start``, then scaled to exactly that temperature: 3N - 6 for a molecule;
ASE's ``get_temperature`` divides by 3N, and this start drawn at 500 K used to
read 352 K that way, 452 K over the 21 that move), dt = 0.5 fs. Reports the
total-energy drift (slope of a linear fit, meV/atom/ps), the largest excursion
of the total energy from its start, the mean temperature over those degrees of
freedom, and whether the
run blew up (non-finite energy before the last step, or an atom farther than
max(10 Å, 10 Å/ps × the run's length) from where it started).
"""

from __future__ import annotations

import argparse
import json
import time

import ase.io
import numpy as np
from ase import units
from ase.md.verlet import VelocityVerlet
from tqdm.auto import tqdm

import mlpot
from md.velocities import thermal_start
from mlpot.modelfile import atomic_write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("structure")
    parser.add_argument("--temperature", type=float, default=500.0, help="K, initial velocities")
    parser.add_argument("--ps", type=float, default=10.0)
    parser.add_argument("--dt-fs", type=float, default=0.5)
    parser.add_argument("--every", type=int, default=20, help="record every N steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json")
    args = parser.parse_args()
    atoms = ase.io.read(args.structure, 0)
    atoms.calc = mlpot.Calculator(args.model)
    dof = thermal_start(atoms, "nve", args.temperature, args.seed) or 3 * len(atoms)  # 0: all 3N move
    # one draw of a few degrees of freedom scatters by sqrt(2/dof) (47 % for ethanol): start at the temperature asked
    drawn = 2 * atoms.get_kinetic_energy() / (dof * units.kB)
    atoms.set_momenta(atoms.get_momenta() * np.sqrt(args.temperature / drawn))
    dyn = VelocityVerlet(atoms, args.dt_fs * units.fs)
    steps = round(args.ps * 1000 / args.dt_fs)
    times, totals, temperatures = [], [], []
    start_positions = atoms.positions.copy()
    wall = time.perf_counter()
    done = 0  # steps run and finite
    for k in tqdm(sorted({*range(0, steps, args.every), steps}), desc="NVE", mininterval=5):  # the last step too
        if k:
            dyn.run(k - done)
        energy = atoms.get_potential_energy() + atoms.get_kinetic_energy()
        if not np.isfinite(energy):
            break
        done = k
        times.append(k * args.dt_fs / 1000)
        totals.append(energy)
        temperatures.append(2 * atoms.get_kinetic_energy() / (dof * units.kB))
    wall = time.perf_counter() - wall
    totals = np.array(totals)
    n = len(atoms)
    slope = np.polyfit(times, totals, 1)[0] if len(times) > 2 else float("nan")
    moved = np.abs(atoms.get_positions() - start_positions).max()
    result = {
        "model": args.model,
        "structure": args.structure,
        "atoms": n,
        "dt_fs": args.dt_fs,
        "ps_done": done * args.dt_fs / 1000,
        "ps_asked": args.ps,
        "initial_temperature_K": args.temperature,
        "degrees_of_freedom": dof,
        "mean_temperature_K": float(np.mean(temperatures)),
        "drift_meV_per_atom_per_ps": float(slope / n * 1e3),
        "max_excursion_meV_per_atom": float(np.abs(totals - totals[0]).max() / n * 1e3) if len(totals) else None,
        "blew_up": bool(done < steps or moved > max(10.0, 10 * args.ps)),
        "wall_s": wall,
        "compiles": atoms.calc.compile_count,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        atomic_write(args.json, json.dumps(result, indent=2).encode())


if __name__ == "__main__":
    main()
