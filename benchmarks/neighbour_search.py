"""Neighbour search on the benchmark systems: mlpot's (vesin) against matscipy's, same pairs, time.

    taskset -c 1 .venv/bin/python benchmarks/neighbour_search.py [--cutoff 5.5]

The cutoff defaults to the MD engine's list radius (5 Å cutoff + 0.5 Å skin).
Atoms are rattled by 0.1 Å. Times are the best of 5 calls. matscipy is a dev
dependency (``pip install -e ".[dev]"``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE / "peers"), str(HERE.parent)]


def best_of(function, repeats: int = 5):
    result, best = function(), float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def pair_set(i, j, shifts):
    return set(zip(i.tolist(), j.tolist(), map(tuple, np.rint(shifts).astype(int).tolist())))


def main() -> int:
    import common
    from matscipy.neighbours import neighbour_list

    from mlpot.graph import _search_cell, neighbour_search

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cutoff", type=float, default=5.5)
    args = parser.parse_args()
    print("| system | atoms | pairs | matscipy ms | mlpot (vesin) ms | speed-up | same pairs |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for system, n in [("cu", 108), ("water", 192), ("water", 1536), ("cu", 4000), ("water", 12288), ("cu", 32000)]:
        try:
            atoms = common.initial_atoms(system, n)
        except FileNotFoundError as err:  # the water box is in ../shared/data (LGPL: not in the repository)
            print(f"| {system} | {n:,} | skipped: {err} |", flush=True)
            continue
        atoms.rattle(0.1, seed=1)
        cell = _search_cell(atoms, args.cutoff)
        t_ms, theirs = best_of(
            lambda a=atoms, c=cell: neighbour_list("ijS", positions=a.positions, cell=c, pbc=a.pbc, cutoff=args.cutoff)
        )
        t_ours, ours = best_of(lambda a=atoms: neighbour_search(a, args.cutoff))
        same = pair_set(*ours[:3]) == pair_set(*theirs)
        print(
            f"| {system} | {n:,} | {len(ours[0]):,} | {t_ms * 1e3:.1f} | {t_ours * 1e3:.1f} | {t_ms / t_ours:.2f}× | {same} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
