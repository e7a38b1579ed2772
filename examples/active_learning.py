"""Active learning with a committee, on a system whose "DFT" is cheap: copper under ASE's EMT.

    python examples/active_learning.py [--rounds 2] [--out runs/active_learning]

1. labels 24 frames of 300 K EMT molecular dynamics of a 32-atom Cu cell: the data a user starts from;
2. trains two small PaiNNs that differ only in their seed (one ``split_seed``, so one set of
   held-out frames) and makes them a committee (``mlpot committee``);
3. runs the committee's own MD at 1,000 K, hotter than anything in the data, scores its frames by
   the members' force deviation (``mlpot deviation``), and labels a few of the candidates with EMT
   (the DFT step of a real loop);
4. retrains both members on the grown set, and repeats.

After each round it prints the committee's force error on 40 frames of 1,000 K EMT MD that no model
trains on, and the members' deviation on its own 1,000 K MD: both fall as the loop adds the
structures the first models had never seen. Everything is written under ``--out``. About 3.5 minutes
on one CPU core (measured beside a training run on the other).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a fresh clone without installing

# first: its malloc setting (mlpot.hostmem) holds for the threads numpy and JAX start after it
import mlpot  # isort: skip

import ase.io
import numpy as np
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.langevin import Langevin

import md
from md.simulation import MDError
from mlpot.deviation import candidates, frame_deviations
from mlpot.models.committee import assemble
from mlpot.training import train
from mlpot.training.evaluation import evaluate_files

MODEL = {"name": "painn", "features": 16, "num_interactions": 2, "num_basis": 8}


def emt_frames(temperature_K: float, count: int, seed: int) -> list:
    """``count`` EMT-labelled frames, 20 fs apart, of Langevin MD of 32 Cu atoms (the "DFT" oracle's data)."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True) * (2, 2, 2)
    atoms.rattle(0.05, seed=seed)
    atoms.calc = EMT()
    dynamics = Langevin(
        atoms,
        2 * units.fs,
        temperature_K=temperature_K,
        friction=0.02 / units.fs,
        fixcm=False,  # ASE 3.28+: its fixcm=True is deprecated (not quite NVT)
        rng=np.random.default_rng(seed),
    )
    dynamics.run(200)  # equilibrate
    frames = []
    for _ in range(count):
        dynamics.run(10)
        frames.append(label(atoms))
    return frames


def label(atoms) -> ase.Atoms:
    """A copy with EMT energy, forces and stress attached: what a DFT code would return."""
    labelled = atoms.copy()
    labelled.calc = EMT()
    results = {p: labelled.calc.get_property(p, labelled) for p in ("energy", "forces", "stress")}
    labelled.calc = SinglePointCalculator(labelled, **results)
    return labelled


def train_members(data: Path, out: Path, minutes: float) -> list[Path]:
    paths = []
    for seed in (0, 1):
        config = {
            "train_file": str(data),
            "valid_fraction": 0.15,
            "split_seed": 0,  # both members hold out the same frames
            "seed": seed,
            "model": MODEL,
            "cutoff": 4.5,
            "energy_weight": 10.0,
            "forces_weight": 10.0,
            "stress_weight": 100.0,
            "batch_size": 4,
            "learning_rate": 0.005,
            "epochs": 400,
            "max_time": minutes,
            "progress": False,
            "plots": False,
            "output_dir": str(out / f"member{seed}"),
        }
        paths.append(train(config, overwrite=True).output_dir / "model.mlpot")  # a rerun of this script starts over
    return paths


def committee_md(committee, start, steps: int) -> list:
    """Frames every 10 steps of the committee's own Langevin MD at 1,000 K (mlpot's engine)."""
    atoms = start.copy()
    dynamics = md.Langevin(
        atoms, 2 * units.fs, temperature_K=1000, friction=0.02 / units.fs, potential=committee, seed=0
    )
    frames = []
    dynamics.attach(lambda: frames.append(atoms.copy()), interval=10)
    try:
        dynamics.run(steps)
    except MDError as err:  # a first model may not survive 1,000 K: what it saw until then is the lesson
        print(f"  (its MD stopped early: {err})")
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="label-and-retrain rounds after the first models")
    parser.add_argument("--add", type=int, default=12, help="frames labelled per round")
    parser.add_argument("--minutes", type=float, default=0.4, help="training budget per member")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "active_learning")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    data, test = args.out / "train.xyz", args.out / "test_1000K.xyz"
    ase.io.write(data, emt_frames(300, 24, seed=1))
    ase.io.write(test, emt_frames(1000, 40, seed=2))
    print("round | training frames | committee force MAE on 1,000 K test, meV/Å | median deviation on its MD, meV/Å")
    for round_ in range(args.rounds + 1):
        members = train_members(data, args.out / f"round{round_}", args.minutes)
        committee = assemble([mlpot.load(p) for p in members])
        committee.save(args.out / f"round{round_}" / "committee.mlpot")
        error = evaluate_files(committee, test)[0]["forces_mae"]
        # from the last training frame, not a test frame: the MD's first frame is that start, and a test
        # frame labelled and trained on would flatter the test error
        explored = committee_md(committee, ase.io.read(data, -1), 400)
        deviation = frame_deviations(committee, explored)[:, 0]
        count = len(ase.io.read(data, ":"))
        print(f"{round_:5d} | {count:15d} | {error * 1e3:42.1f} | {np.median(deviation) * 1e3:.1f}")
        if round_ == args.rounds:
            break
        # candidates: above the median deviation (the members disagree), below 1 eV/Å (not a broken run)
        chosen = candidates(deviation, float(np.median(deviation)), 1.0, args.add, seed=round_)
        ase.io.write(data, [label(explored[k]) for k in chosen], append=True)
    print(f"\nfiles: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
