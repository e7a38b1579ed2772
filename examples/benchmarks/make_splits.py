"""Seeded train/valid/test splits of the shared DFT data, written as extxyz files.

    python examples/benchmarks/make_splits.py [--data DIR] [--out runs/benchmarks/splits] [NAME ...]

The data are read from ``--data``, else ``$MLPOT_DATA``, else ``../shared/data`` beside the clone;
ethanol's source also ships in the repository (``datasets/ethanol/train.xyz``, the same bytes), so
``make_splits.py ethanol`` works in any clone.

Every recipe in examples/benchmarks/ trains on ``<name>_train.xyz``, selects
its best epoch on ``<name>_valid.xyz`` and is reported on ``<name>_test.xyz``
(never used in training or model selection). The splits are a pure function
of the seed and the input files, so rerunning gives identical files. The
files are written outside git (``runs/`` is ignored): the water data are
LGPL and stay out of the repository.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import ase.io
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261121

# name: (source file, valid fraction, test fraction or a separate test file)
SPLITS = {
    "ethanol": ("ethanol_pbe/train.xyz", 0.05, 0.10),
    "3bpa": ("3bpa/train_300K.xyz", 0.10, "3bpa/train_mixedT.xyz"),
    "water": ("water_deepmd/water_192.xyz", 0.10, 0.10),
    "mlearn-Si": ("mlearn/Si_train.xyz", 0.10, 0.10),
    "mlearn-Ge": ("mlearn/Ge_train.xyz", 0.10, 0.10),
    "mlearn-Li": ("mlearn/Li_train.xyz", 0.10, 0.10),
    "mlearn-Mo": ("mlearn/Mo_train.xyz", 0.10, 0.10),
}


# sources the repository bundles, byte for byte the shared files
BUNDLED = {"ethanol_pbe/train.xyz": ROOT / "datasets" / "ethanol" / "train.xyz"}


def default_data() -> Path:
    return Path(os.environ.get("MLPOT_DATA") or ROOT.parent / "shared" / "data")


def locate(data: Path, relative: str) -> Path:
    """``data/relative``, else the repository's bundled copy; a clear error where neither is."""
    for path in (data / relative, BUNDLED.get(relative)):
        if path is not None and path.is_file():
            return path
    raise FileNotFoundError(
        f"{data / relative} not found: point --data (or $MLPOT_DATA) at the folder of the shared DFT data "
        f"(../shared/data beside the clone); only {', '.join(BUNDLED)} ships with the repository"
    )


def split(name: str, data: Path, out: Path) -> dict:
    source, valid_fraction, test = SPLITS[name]
    frames = ase.io.read(locate(data, source), ":")
    order = np.random.default_rng(SEED).permutation(len(frames))
    n_valid = round(valid_fraction * len(frames))
    n_test = 0 if isinstance(test, str) else round(test * len(frames))
    parts = {
        "valid": order[:n_valid],
        "test": order[n_valid : n_valid + n_test],
        "train": order[n_valid + n_test :],
    }
    sizes = {}
    for part, idx in parts.items():
        chosen = [frames[k] for k in sorted(idx)]
        if part == "test" and isinstance(test, str):
            given = ase.io.read(locate(data, test), ":")
            chosen = unseen(given, frames)
            sizes["test-file frames also in the source (dropped)"] = len(given) - len(chosen)
        ase.io.write(out / f"{name}_{part}.xyz", chosen, format="extxyz")
        sizes[part] = len(chosen)
    return sizes


def _fingerprint(atoms) -> bytes:
    return atoms.numbers.tobytes() + np.round(atoms.positions, 4).tobytes()


def unseen(test_frames: list, source_frames: list) -> list:
    """The test frames that are not also frames of the training source (same elements, positions to 1e-4 Å).

    3BPA's train_mixedT.xyz repeats 31 of train_300K.xyz's 500 frames (same positions and energies):
    kept, they would put training and validation frames into the test score.
    """
    seen = {_fingerprint(atoms) for atoms in source_frames}
    return [atoms for atoms in test_frames if _fingerprint(atoms) not in seen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="default: $MLPOT_DATA, else ../shared/data")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "benchmarks" / "splits")
    parser.add_argument("names", nargs="*", default=list(SPLITS), help=f"subset of {list(SPLITS)}")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(SPLITS))
    if unknown:
        parser.error(f"unknown split {', '.join(unknown)}: choose from {', '.join(SPLITS)}")
    data = args.data or default_data()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        try:
            sizes = split(name, data, args.out)
        except FileNotFoundError as err:
            raise SystemExit(f"make_splits.py {name}: {err}") from None
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in sizes.items()) + f" frames -> {args.out}/{name}_*.xyz")


if __name__ == "__main__":
    main()
