"""`make demo`: train a PaiNN potential on the bundled ethanol data in a few minutes, then check it.

1. trains with examples/ethanol.yaml (time budget 3 min of training on 2 CPU cores);
2. prints energy and force errors on 100 held-out test frames (never used for training or model choice);
3. uses the saved model through the ASE calculator, and says where the plots are.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a fresh clone without installing

import ase.io

import mlpot
from mlpot.training import load, train
from mlpot.training.metrics import format_table


def main() -> int:
    config = load(ROOT / "examples" / "ethanol.yaml", sys.argv[1:])
    print(f"training {config.model['name']} on {config.train_file} (budget {config.max_time} min)")
    start = time.perf_counter()
    result = train(config)
    print(f"\ntrained in {time.perf_counter() - start:.0f} s ({len(result.history)} epochs)")
    print(f"\nheld-out test frames (not used for training or model selection), {result.test_metrics['n_frames']} frames:")
    print(format_table(result.test_metrics))
    out = result.output_dir.resolve()
    atoms = ase.io.read(ROOT / "datasets" / "ethanol" / "train.xyz", 0)
    atoms.calc = mlpot.Calculator(out / "model.mlpot")
    print(f"\nASE calculator on frame 0: E = {atoms.get_potential_energy():.4f} eV "
          f"(DFT {ase.io.read(ROOT / 'datasets' / 'ethanol' / 'train.xyz', 0).get_potential_energy():.4f} eV)")
    print(f"\nmodel:           {out / 'model.mlpot'}")
    print(f"metrics per epoch: {out / 'metrics.csv'}")
    print(f"plots:           {out / 'parity_test.png'}, {out / 'parity_valid.png'}, {out / 'learning_curves.png'}")
    print(f"evaluate again:  mlpot eval {out / 'model.mlpot'} datasets/ethanol/train.xyz --json metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
