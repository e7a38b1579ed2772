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

mlearn's sources repeat strained cells rotated, reflected or with their atoms
in another order (the elastic frames: one strain along x, y and z). A copy in
the test split of a training frame measures the fit, not a hold-out error, so
copies (``mlpot.data.symmetric_copy_pairs``) go to one split: to training if
any of them is drawn for training, else to validation. Sources without copies
(ethanol, 3BPA, water, mlearn Mo) split as they did before this rule; Si, Ge and
Li move 9 + 3, 3 + 2 and 2 + 2 test + validation frames to training, each a
copy of a training frame (so a model trained on the old split is still
scored on frames it never saw, nor copies of them).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import ase.io
import numpy as np

from mlpot.data import symmetric_copy_pairs

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
    parts, moved = _copies_together(frames, parts)
    sizes = {f"{part} copies moved to train or valid": k for part, k in moved.items() if k}
    for part, idx in parts.items():
        chosen = [frames[k] for k in sorted(idx)]
        if part == "test" and isinstance(test, str):
            given = ase.io.read(locate(data, test), ":")
            chosen = unseen(given, frames)
            sizes["test-file frames also in the source (dropped)"] = len(given) - len(chosen)
        ase.io.write(out / f"{name}_{part}.xyz", chosen, format="extxyz")
        sizes[part] = len(chosen)
    return sizes


def _copies_together(frames: list, parts: dict) -> tuple[dict, dict]:
    """``parts`` with every group of symmetric copies in one part: train if any copy is drawn for it, else
    valid; and how many frames each held-out part gave up."""
    names = ("train", "valid", "test")
    group = {j: i for i, j in symmetric_copy_pairs(frames, frames)}  # j -> its first copy (itself if none)
    drawn = {int(k): names.index(part) for part, idx in parts.items() for k in idx}
    home = {}
    for k, rank in drawn.items():
        home[group[k]] = min(home.get(group[k], rank), rank)
    kept = {part: [int(k) for k in idx if home[group[int(k)]] == names.index(part)] for part, idx in parts.items()}
    moved = {part: len(parts[part]) - len(kept[part]) for part in ("valid", "test")}
    for k in (int(k) for part in ("valid", "test") for k in parts[part]):
        destination = names[home[group[k]]]
        if k not in kept[destination]:
            kept[destination].append(k)
    return {part: np.asarray(kept[part], dtype=int) for part in names}, moved


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
