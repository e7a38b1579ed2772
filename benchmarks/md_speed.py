"""MD throughput: mlpot's engine vs ASE's VelocityVerlet driving mlpot.Calculator.

For water (192 atoms from the DeePMD set, replicated to ~1.5k and ~12k) and
fcc Cu (108, ~1.4k, ~11k) with a PaiNN (random init unless --model is given:
the cost of a step does not depend on the weights): compile time, steps/s,
atom-steps/s, the host neighbour-rebuild share, and the same model under
ASE's driver (ratio). Prints a table and writes JSON; asserts nothing.

  nice python benchmarks/md_speed.py --quick --json md_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax
from ase import units
from ase.build import bulk
from ase.md.verlet import VelocityVerlet as AseVelocityVerlet

import mlpot
from md.forces import potential_forces
from md.integrators import params
from md.simulation import Simulation
from md.velocities import maxwell_boltzmann
from mlpot import ModelConfig, Potential

sys.path.insert(0, str(Path(__file__).resolve().parent))
import structures  # benchmarks/structures.py: the shared test systems

HYPER = {"features": 16, "num_interactions": 2}


def systems(quick: bool):
    try:  # the water box is in ../shared/data (LGPL: not in the repository)
        water = structures.water(192)
    except FileNotFoundError as err:
        print(f"water skipped: {err}", file=sys.stderr)
        water = None
    copper = bulk("Cu", "fcc", a=3.61, cubic=True)
    out = [("water", water), ("Cu", copper.repeat(3))]
    if not quick:
        out += [
            ("water", water.repeat(2) if water else None),
            ("Cu", copper.repeat(7)),
            ("water", water.repeat(4) if water else None),
            ("Cu", copper.repeat(14)),
        ]
    return [(name, atoms) for name, atoms in out if atoms is not None]


def potential_for(name, model_path):
    if name == "water" and model_path:
        return mlpot.load(model_path)
    species = (1, 8) if name == "water" else (29,)
    # Random weights cost the same per step as trained ones; a small energy scale keeps
    # the random-force dynamics gentle enough to run without tripping the safety stops.
    config = ModelConfig("painn", 5.0, species, HYPER, energy_scale=(0.1,) * len(species))
    return Potential.create(config)


def engine_runner(potential, atoms, dt, skin):
    """(compile seconds, segment(steps) -> seconds, stats() -> dict) for our engine."""
    forces = potential_forces(potential, atoms, skin=skin)
    start = time.perf_counter()
    sim = Simulation(forces, atoms, "nve", params(dt=dt), min_distance=0.0, max_temperature_K=1e7)
    jax.block_until_ready(sim.state.positions)
    compile_s = time.perf_counter() - start
    sim.run(2)  # any first-call overheads outside compilation
    nl = forces.neighbours
    counts = {"builds": nl.builds, "seconds": nl.seconds, "steps": 0}

    def segment(steps):
        start = time.perf_counter()
        sim.run(steps)
        jax.block_until_ready(sim.state.positions)
        counts["steps"] += steps
        return time.perf_counter() - start

    def stats():
        return {
            "rebuilds_per_step": (nl.builds - counts["builds"]) / counts["steps"],
            "rebuild_s_per_step": (nl.seconds - counts["seconds"]) / counts["steps"],
            "rebuild_one_s": nl.seconds / nl.builds,
            "pairs": nl.num_pairs,  # each pair once (the model sees active pairs in both directions)
            "active_pairs": nl.num_active,
            "capacity_pairs_active": nl.capacity,
            "compiles": sim.compile_count,
        }

    return compile_s, segment, stats


def ase_runner(potential, atoms, dt):
    """(compile seconds, segment(steps) -> seconds) for ASE's VelocityVerlet + mlpot.Calculator."""
    atoms = atoms.copy()
    atoms.calc = mlpot.Calculator(potential)
    dyn = AseVelocityVerlet(atoms, dt)
    start = time.perf_counter()
    dyn.run(2)  # compiles
    compile_s = time.perf_counter() - start

    def segment(steps):
        start = time.perf_counter()
        dyn.run(steps)
        return time.perf_counter() - start

    return compile_s, segment


def measure(potential, atoms, steps, args, with_ase):
    """Interleaved timed segments (ours, ASE, ours, ...), best of ``args.repeats`` each:
    on a shared machine, interleaving exposes both to the same background load."""
    dt = args.dt * units.fs
    compile_s, ours, stats = engine_runner(potential, atoms, dt, args.skin)
    theirs = ase_runner(potential, atoms, dt) if with_ase else None
    ase_steps = max(3, steps // 4)
    walls, ase_walls = [], []
    for _ in range(args.repeats):
        walls.append(ours(steps))
        if theirs:
            ase_walls.append(theirs[1](ase_steps))
    engine = {"compile_s": compile_s, "steps": steps, "steps_per_s": steps / min(walls), "all_wall_s": walls}
    engine.update(stats())
    # over the same repeats as rebuild_s_per_step: times the best repeat's rate it can pass 100 %
    engine["rebuild_share"] = engine["rebuild_s_per_step"] * steps * len(walls) / sum(walls)
    ase = None
    if theirs:
        ase = {
            "compile_s": theirs[0],
            "steps": ase_steps,
            "steps_per_s": ase_steps / min(ase_walls),
            "all_wall_s": ase_walls,
        }
    return engine, ase


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small systems only (192 water, 108 Cu)")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--model", default=None, help="water model file (default: random-init PaiNN)")
    parser.add_argument("--atom-steps", type=float, default=2e4, help="work per timing (atoms x steps)")
    parser.add_argument("--max-atoms", type=int, default=20000, help="skip systems larger than this")
    parser.add_argument("--skip-ase-above", type=int, default=20000, help="no ASE comparison above N atoms")
    parser.add_argument("--repeats", type=int, default=3, help="timed segments per measurement (best is kept)")
    parser.add_argument("--dt", type=float, default=0.5, help="fs")
    parser.add_argument("--skin", type=float, default=0.5, help="Å")
    args = parser.parse_args(argv)
    results = []
    print(
        f"{'system':>14} {'atoms':>6} {'compile s':>9} {'steps/s':>9} {'atom-steps/s':>12} {'us/atom-step':>12} "
        f"{'rebuild %':>9} {'ASE steps/s':>11} {'speed-up':>8}"
    )
    for name, atoms in systems(args.quick):
        n = len(atoms)
        if n > args.max_atoms:
            continue
        maxwell_boltzmann(atoms, 300.0, seed=0)
        potential = potential_for(name, args.model)
        steps = int(max(3, min(200, args.atom_steps / n)))
        ours, ase = measure(potential, atoms, steps, args, n <= args.skip_ase_above)
        row = {"system": name, "atoms": n, "engine": ours}
        if ase:
            row["ase"] = ase
            row["speedup"] = ours["steps_per_s"] / ase["steps_per_s"]
        row["atom_steps_per_s"] = ours["steps_per_s"] * n
        row["us_per_atom_step"] = 1e6 / row["atom_steps_per_s"]
        results.append(row)
        ase_rate = f"{row['ase']['steps_per_s']:11.2f}" if "ase" in row else f"{'-':>11}"
        speedup = f"{row['speedup']:8.2f}" if "speedup" in row else f"{'-':>8}"
        print(
            f"{name:>14} {n:6d} {ours['compile_s']:9.1f} {ours['steps_per_s']:9.2f} {row['atom_steps_per_s']:12.0f} "
            f"{row['us_per_atom_step']:12.2f} {100 * ours['rebuild_share']:9.1f} {ase_rate} {speedup}",
            flush=True,
        )
    flatness = {}
    for name in ("water", "Cu"):
        sizes = sorted((r["atoms"], r["us_per_atom_step"]) for r in results if r["system"] == name)
        if len(sizes) >= 3:
            flatness[name] = sizes[-1][1] / sizes[-2][1]  # per-atom-step cost, largest / ~1.5k
            print(f"{name}: per-atom-step time {sizes[-2][0]} -> {sizes[-1][0]} atoms changes x{flatness[name]:.2f}")
    info = {
        "machine": platform.node(),
        "cpu_count": len(__import__("os").sched_getaffinity(0)),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0]),
        "model": args.model or f"random-init PaiNN {HYPER}, cutoff 5 Å, float32",
        "dt_fs": args.dt,
        "skin": args.skin,
        "results": results,
        "per_atom_step_flatness": flatness,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
