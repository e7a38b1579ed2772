"""Lattice constant of a cubic crystal under MTK NPT at zero pressure, against the model's relaxed one.

    python benchmarks/npt_lattice.py MODEL [--element Si] [--structure diamond] [--a 5.43] [--repeat 2]
                                     [--temperatures 300 1000] [--ps 10] [--dt 1] [--json FILE]

First relaxes the conventional cell with ASE (FrechetCellFilter + BFGS on ``mlpot.Calculator``,
fmax 1e-4 eV/Å): the model's 0 K lattice constant a0, from the calculator's stress. Then, for each
temperature, ``mlpot md --ensemble npt-mtk --pressure 0`` from that cell (Maxwell-Boltzmann start),
and averages over the second half of the run: <a> = (<V> / repeat^3)^(1/3), <P>, <T>. The MD path
(the engine's stress, the barostat) is independent of the relaxation's, so <a> - a0 is the model's
classical thermal expansion. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import ase.io
import numpy as np
from ase.build import bulk
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

import mlpot
from mlpot.modelfile import atomic_write


def relaxed_lattice_constant(model: str, element: str, structure: str, a: float) -> float:
    atoms = bulk(element, structure, a=a, cubic=True)
    atoms.calc = mlpot.Calculator(model)
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-4, steps=500)
    return atoms.get_volume() ** (1 / 3)


def npt_run(model: str, start: Path, temperature: float, steps: int, dt: float, folder: Path) -> list[dict]:
    log = folder / f"npt_{temperature:g}K.csv"
    command = [sys.executable, "-m", "mlpot.cli", "md", model, str(start), "--ensemble", "npt-mtk"]
    command += ["--temperature", f"{temperature:g}", "--pressure", "0", "--dt", f"{dt:g}", "--steps", str(steps)]
    command += ["--interval", "20", "--taup", f"{1000 * dt:g}", "--log", str(log), "--overwrite"]
    subprocess.run(command, check=True)
    return list(csv.DictReader(log.read_text().splitlines()))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--element", default="Si")
    p.add_argument("--structure", default="diamond")
    p.add_argument("--a", type=float, default=5.43, help="starting lattice constant, Å")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 1000.0])
    p.add_argument("--ps", type=float, default=10.0)
    p.add_argument("--dt", type=float, default=1.0, help="fs")
    p.add_argument("--json", default=None)
    args = p.parse_args()

    a0 = relaxed_lattice_constant(args.model, args.element, args.structure, args.a)
    print(f"relaxed (0 K, FrechetCellFilter): a0 = {a0:.4f} Å")
    results = {"model": args.model, "a0": a0, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        start = Path(tmp) / "start.xyz"
        ase.io.write(start, bulk(args.element, args.structure, a=a0, cubic=True).repeat(args.repeat))
        for temperature in args.temperatures:
            rows = npt_run(args.model, start, temperature, round(args.ps * 1000 / args.dt), args.dt, Path(tmp))
            rows = rows[len(rows) // 2 :]
            column = {k: np.array([float(r[k]) for r in rows]) for k in ("volume_A3", "pressure_GPa", "temperature_K")}
            a = (column["volume_A3"].mean() / args.repeat**3) ** (1 / 3)
            run = {
                "temperature_K": temperature,
                "mean_a": a,
                "expansion_percent": 100 * (a / a0 - 1),
                "mean_pressure_GPa": float(column["pressure_GPa"].mean()),
                "pressure_std_GPa": float(column["pressure_GPa"].std()),
                "mean_temperature_K": float(column["temperature_K"].mean()),
            }
            results["runs"].append(run)
            print(
                f"{temperature:g} K: <a> = {a:.4f} Å ({run['expansion_percent']:+.3f} %), <P> = "
                f"{run['mean_pressure_GPa']:+.4f} GPa (std {run['pressure_std_GPa']:.3f}), <T> = {run['mean_temperature_K']:.1f} K"
            )
    if args.json:
        atomic_write(args.json, json.dumps(results, indent=2).encode())


if __name__ == "__main__":
    main()
