"""`make demo`: train a PaiNN potential on the bundled ethanol data in a few minutes, then check it.

1. trains with examples/ethanol.yaml (time budget 2.5 min of training on 2 CPU cores);
2. prints energy and force errors on 100 held-out test frames (never used for training or model choice);
3. uses the saved model through the ASE calculator, and says where the plots are;
4. runs 1 ps of NVE molecular dynamics with it (mlpot's jitted engine, dt 0.5 fs,
   from 300 K), writes the trajectory and thermo log, and reports the energy drift.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a fresh clone without installing

# first: its malloc setting (mlpot.hostmem) holds for the threads numpy and JAX start after it
import mlpot  # isort: skip

import ase.io
import numpy as np
from ase import units
from ase.md.velocitydistribution import ZeroRotation

import md
from md.velocities import maxwell_boltzmann
from mlpot.training import load, train
from mlpot.training.metrics import format_table


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="e.g. python examples/demo.py max_time=1"
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="changes to examples/ethanol.yaml")
    config = load(ROOT / "examples" / "ethanol.yaml", parser.parse_args().overrides)
    print(f"training {config.model['name']} on {config.train_file} (budget {config.max_time} min)")
    start = time.perf_counter()
    result = train(config, overwrite=True)  # `make demo` again trains again
    print(f"\ntrained in {time.perf_counter() - start:.0f} s ({len(result.history)} epochs)")
    print(
        f"\nheld-out test frames (not used for training or model selection), {result.test_metrics['n_frames']} frames:"
    )
    print(format_table(result.test_metrics))
    out = result.output_dir.resolve()
    atoms = ase.io.read(ROOT / "datasets" / "ethanol" / "train.xyz", 0)
    atoms.calc = mlpot.Calculator(out / "model.mlpot")
    print(
        f"\nASE calculator on frame 0: E = {atoms.get_potential_energy():.4f} eV "
        f"(DFT {ase.io.read(ROOT / 'datasets' / 'ethanol' / 'train.xyz', 0).get_potential_energy():.4f} eV)"
    )
    run_md(out)
    print(f"\nmodel:           {out / 'model.mlpot'}")
    print(f"metrics per epoch: {out / 'metrics.csv'}")
    print(f"plots:           {out / 'parity_test.png'}, {out / 'parity_valid.png'}, {out / 'learning_curves.png'}")
    print(f"evaluate again:  mlpot eval {out / 'model.mlpot'} YOUR_HELD_OUT_FRAMES.xyz --json metrics.json")
    print(f"MD trajectory:   {out / 'md.traj'}  (thermo log {out / 'md.csv'})")
    return 0


def run_md(out: Path, steps: int = 2000) -> None:
    """1 ps NVE of ethanol at 300 K with the trained model; total-energy drift and spread."""
    atoms = ase.io.read(ROOT / "datasets" / "ethanol" / "train.xyz", 0)
    atoms.calc = mlpot.Calculator(out / "model.mlpot")
    maxwell_boltzmann(atoms, 300, seed=0)  # zero total momentum
    ZeroRotation(atoms)
    start = time.perf_counter()  # building the driver compiles the MD program: count it
    dyn = md.VelocityVerlet(
        atoms, 0.5 * units.fs, trajectory=str(out / "md.traj"), logfile=str(out / "md.csv"), loginterval=20
    )
    totals = []
    dyn.attach(lambda: totals.append(atoms.get_total_energy()), interval=20)
    dyn.run(steps)
    seconds = time.perf_counter() - start
    totals = np.array(totals)
    drift = np.polyfit(np.arange(len(totals)) * 20 * 0.5e-3, totals, 1)[0] / len(atoms)  # eV/atom/ps
    print(
        f"\nNVE MD, {steps} steps of 0.5 fs ({steps * 0.5e-3:.1f} ps) in {seconds:.1f} s "
        f"(incl. compile; {steps * 0.5e-6 / (seconds / 86400):.2f} ns/day):"
    )
    print(
        f"  total energy spread {np.ptp(totals) * 1e3:.2f} meV, drift {drift * 1e3:+.3f} meV/atom/ps, "
        f"final T {atoms.get_temperature():.0f} K"
    )


if __name__ == "__main__":
    sys.exit(main())
