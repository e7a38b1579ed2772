"""Markdown rows for BENCHMARKS.md from the `mlpot eval --json` results.

    python examples/benchmarks/tables.py [examples/benchmarks/results/*.json]

Energies in meV (per structure) and meV/atom, forces in meV/Å per component,
stress in meV/Å^3 per component: the units of the tables in BENCHMARKS.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = [
    ("energy_mae", "E MAE"),
    ("energy_rmse", "E RMSE"),
    ("energy_mae_per_atom", "E/atom MAE"),
    ("energy_rmse_per_atom", "E/atom RMSE"),
    ("forces_mae", "F MAE"),
    ("forces_rmse", "F RMSE"),
    ("stress_mae", "σ MAE"),
    ("stress_rmse", "σ RMSE"),
]


def row(path: Path) -> str:
    metrics = json.loads(path.read_text())
    cells = [f"{metrics[key] * 1e3:.3g}" if key in metrics else "–" for key, _ in COLUMNS]
    return f"| {path.stem} | {metrics['n_frames']} | " + " | ".join(cells) + " |"


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or sorted(RESULTS.glob("*.json"))
    print("| model | test frames | " + " | ".join(label for _, label in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for path in paths:
        document = json.loads(path.read_text())
        if isinstance(document, dict) and "n_frames" in document:  # not the speed and NVE results beside them
            print(row(path))


if __name__ == "__main__":
    main()
