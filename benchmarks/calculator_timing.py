"""Time per call and compile count of mlpot.Calculator over an ASE MD run.

    python benchmarks/calculator_timing.py [--structure FILE] [--model painn|mace|PATH] [--steps N]

Prints figures; asserts nothing. Default structure: the 192-atom water box
from ../shared/data, or 108 rattled fcc Cu atoms where that is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ase import units
from ase.io import read
from ase.md.verlet import VelocityVerlet

import mlpot
from md.velocities import maxwell_boltzmann
from mlpot import Calculator, ModelConfig, Potential

sys.path.insert(0, str(Path(__file__).resolve().parent))
import structures  # benchmarks/structures.py: the shared test systems


def default_structure():
    try:
        return structures.water(192)
    except FileNotFoundError as err:
        print(f"{err}: using 108 fcc Cu atoms instead", file=sys.stderr)
        return structures.copper(108)


def make_potential(model: str, species) -> Potential:
    if Path(model).is_file():
        return mlpot.load(model)
    return Potential.create(ModelConfig(model, 5.0, species))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structure", default=None, help="any ASE-readable file (first frame)")
    parser.add_argument("--model", default="painn", help="model name (random init) or a .mlpot file")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    atoms = read(args.structure, 0) if args.structure else default_structure()
    potential = make_potential(args.model, sorted(set(atoms.numbers)))
    calc = Calculator(potential)
    atoms.calc = calc
    start = time.perf_counter()
    atoms.get_forces()
    first = time.perf_counter() - start
    maxwell_boltzmann(atoms, 300, seed=0)
    dyn = VelocityVerlet(atoms, 0.5 * units.fs)
    start = time.perf_counter()
    dyn.run(args.steps)
    per_call = (time.perf_counter() - start) / args.steps
    atoms.get_stress()
    result = {
        "atoms": len(atoms),
        "model": args.model,
        "first_call_s": first,
        "seconds_per_call": per_call,
        "compiles_after_md_and_stress": calc.compile_count,
        "md_steps": args.steps,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
