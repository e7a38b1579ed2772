"""The shared test systems of the speed benchmark, identical for us and every peer.

Only ASE and numpy are imported here, because each peer's runner imports this
file from inside its own virtual environment.

  water: the first frame of DeePMD's 192-atom liquid-water box (cubic 12.44 Å),
         replicated 1x1x1 (192), 2x2x2 (1,536) and 4x4x4 (12,288 atoms);
  cu:    fcc copper, a = 3.61 Å, 3^3 (108), 10^3 (4,000) and 20^3 (32,000 atoms)
         cubic cells, rattled by 0.02 Å so forces are not zero by symmetry.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk

ROOT = Path(__file__).resolve().parent.parent
WATER_FILE = "water_deepmd/water_192.xyz"
CU_LATTICE = 3.61  # Å
WATER_REPLICAS = {192: 1, 1536: 2, 12288: 4}  # atoms -> replicas per axis
CU_CELLS = {108: 3, 4000: 10, 32000: 20}  # atoms -> conventional cells per axis
SIZES = {"water": tuple(WATER_REPLICAS), "cu": tuple(CU_CELLS)}
SPECIES = {"water": (1, 8), "cu": (29,)}  # atomic numbers a model must know


def data_folders() -> list:
    """Where the shared data may be, in order: ``$MLPOT_DATA``, ``../shared/data`` beside the clone, ``/work/shared/data``."""
    return [Path(c) for c in (os.environ.get("MLPOT_DATA"), ROOT.parent / "shared" / "data", "/work/shared/data") if c]


def data_dir() -> Path:
    """``$MLPOT_DATA``, else ``../shared/data`` beside the clone, else ``/work/shared/data``."""
    for candidate in data_folders():
        if candidate and Path(candidate, WATER_FILE).is_file():
            return Path(candidate)
    raise FileNotFoundError(
        f"benchmarks/structures.py: {WATER_FILE} not found under $MLPOT_DATA, "
        f"{ROOT.parent / 'shared' / 'data'} or /work/shared/data"
    )


def water(num_atoms: int = 192) -> Atoms:
    """Liquid water box of ``num_atoms`` (192, 1536 or 12288) atoms."""
    if num_atoms not in WATER_REPLICAS:
        raise ValueError(f"water comes in {sorted(WATER_REPLICAS)} atoms, not {num_atoms}")
    from ase.io import read

    frame = read(data_dir() / WATER_FILE, index=0)
    frame.calc = None  # drop the DFT labels: benchmark input only
    n = WATER_REPLICAS[num_atoms]
    return Atoms(frame.numbers, frame.positions, cell=frame.cell, pbc=True).repeat((n, n, n))


def copper(num_atoms: int = 108, rattle: float = 0.02, seed: int = 0) -> Atoms:
    """fcc Cu in a cubic box of ``num_atoms`` (108, 4000 or 32000) atoms."""
    if num_atoms not in CU_CELLS:
        raise ValueError(f"cu comes in {sorted(CU_CELLS)} atoms, not {num_atoms}")
    n = CU_CELLS[num_atoms]
    atoms = bulk("Cu", "fcc", a=CU_LATTICE, cubic=True).repeat((n, n, n))
    atoms.positions += np.random.default_rng(seed).normal(0.0, rattle, atoms.positions.shape)
    return atoms


def build(system: str, num_atoms: int) -> Atoms:
    """``build("water", 1536)`` or ``build("cu", 4000)``."""
    makers = {"water": water, "cu": copper}
    if system not in makers:
        raise ValueError(f"unknown system {system!r}; choose from {sorted(makers)}")
    return makers[system](num_atoms)


def cases(quick: bool = False, max_atoms: int | None = None) -> list[tuple[str, int]]:
    """(system, atoms) pairs in benchmark order; ``quick`` keeps the smallest of each."""
    out = []
    for system, sizes in SIZES.items():
        for n in sizes[:1] if quick else sizes:
            if max_atoms is None or n <= max_atoms:
                out.append((system, n))
    return out
