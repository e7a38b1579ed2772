"""Time to accuracy on ethanol: validation force MAE against wall time, ours and apax's.

    .venv/bin/python examples/benchmarks/make_splits.py ethanol
    taskset -c 0 .venv/bin/python benchmarks/time_to_accuracy.py --minutes 20 [--engines painn,painn-small,mace,apax]

Every engine trains on the same files (our seeded ethanol splits: 850
training, 50 validation frames), one process at a time, each for ``--minutes``
of wall time counted from the command's start (data loading and compiles
included). Ours run the shipped recipe ``examples/benchmarks/ethanol-painn.yaml``
(or ``ethanol-cpu.yaml`` for MACE) with ``max_time`` set to the budget, so the
cosine schedule fits it; apax runs its defaults through
``benchmarks/peers/train_apax.py`` in its own environment.

For each engine this script polls the per-epoch log (ours: ``metrics.csv``;
apax: ``log.csv``) and stamps every epoch with the wall time (ours: the row's own
``time_s`` plus the start-up time, since the CSV is flushed at most every 10 s). Reported: the
best validation force MAE reached by 5, 10 and 20 minutes, training frames/s
after the first epoch, and the time each engine took to reach the MAE apax
ends at (the "time to a given accuracy" ratio). Writes JSON and a plot.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPLITS = ROOT / "runs" / "benchmarks" / "splits"
OUT = ROOT / "runs" / "benchmarks" / "time_to_accuracy"
MARKS_MIN = (5, 10, 20)

OURS = {  # name: (recipe, overrides); painn-fast is the fast model of the MD benchmark (painn-small before it)
    "painn": ("ethanol-painn.yaml", []),
    "painn-small": ("ethanol-painn.yaml", ["model.features=16", "model.num_interactions=2"]),
    "painn-fast": ("ethanol-painn.yaml", ["model.features=16", "model.num_interactions=2", "model.num_basis=8"]),
    "mace": ("ethanol-cpu.yaml", []),
}


def read_rows(path: Path) -> list[dict]:
    """The epoch rows of a per-epoch CSV log written so far (none if it does not exist yet)."""
    if not path.is_file():
        return []
    with path.open() as handle:
        return [row for row in csv.DictReader(handle) if row.get("epoch")]


def follow(process: subprocess.Popen, log: Path, start: float, seconds: float | None = None):
    """(wall-time stamps, rows) of ``log`` while ``process`` trains: each new row is stamped with
    the time since ``start`` when it appears. Returns when the process ends or ``seconds`` pass."""
    stamps: list[float] = []
    while process.poll() is None and (seconds is None or time.perf_counter() - start < seconds):
        time.sleep(0.2)
        stamps += [time.perf_counter() - start] * (len(read_rows(log)) - len(stamps))
    return stamps, read_rows(log)[: len(stamps)]


def train_ours(name: str, minutes: float) -> dict:
    recipe, overrides = OURS[name]
    out = OUT / name
    command = [
        str(Path(sys.executable).with_name("mlpot")),
        "train",
        str(ROOT / "examples" / "benchmarks" / recipe),
        "-o", f"max_time={minutes}",
        "-o", "epochs=100000",  # the time budget ends it
        "-o", f"output_dir={out}",
        "--overwrite",  # a benchmark run starts over
        *[arg for item in overrides for arg in ("-o", item)],
    ]  # fmt: skip
    metrics = out / "metrics.csv"
    if metrics.exists():
        metrics.unlink()
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stamps, rows = follow(process, metrics, start)
    _, stderr = process.communicate()
    if process.returncode != 0 or not rows:
        return {"engine": f"mlpot {name}", "status": "failed", "error": stderr.strip()[-500:]}
    # Rows reach the CSV in batches (it is flushed at most every 10 s), so each epoch is stamped with
    # its own time_s (seconds since training began) plus the start-up time (data, model) before it.
    # A row is seen at or after its epoch ended, so the smallest stamp - time_s is the closest bound
    # (the first flush may come up to 10 s after the first epoch).
    startup = min(stamp - float(row["time_s"]) for stamp, row in zip(stamps, rows))
    curve = [
        {
            "time_s": startup + float(row["time_s"]),
            "epoch": int(row["epoch"]),
            "valid_forces_mae": float(row["valid_forces_mae"]),
        }
        for row in rows
    ]
    import ase.io

    n_train = len(ase.io.read(SPLITS / "ethanol_train.xyz", index=":"))
    return {"engine": f"mlpot {name}", "status": "ok", "frames": n_train, "curve": curve}


def train_apax(minutes: float) -> dict:
    python = HERE / "peers" / ".venv-apax" / "bin" / "python"
    if not python.is_file():
        return {"engine": "apax GMNN", "status": "not installed (bash benchmarks/peers/setup.sh apax)"}
    result = subprocess.run(
        [str(python), str(HERE / "peers" / "train_apax.py"), "--minutes", str(minutes)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"engine": "apax GMNN", "status": "failed", "error": result.stderr.strip()[-500:]}
    record = json.loads(lines[-1])
    record["engine"] = "apax GMNN"
    return record


def summarise(record: dict, minutes: float) -> dict:
    """Best-so-far MAE at the marks, frames/s after the first epoch."""
    curve = record.get("curve") or []
    if not curve:
        return record
    best, low = [], float("inf")
    for point in curve:
        low = min(low, point["valid_forces_mae"])
        best.append(low)
    record["best_curve"] = best
    record["valid_forces_mae_at"] = {
        f"{mark}min": next((b for p, b in zip(reversed(curve), reversed(best)) if p["time_s"] <= 60 * mark), None)
        if mark <= minutes
        else None
        for mark in MARKS_MIN
    }
    if len(curve) > 1:
        span = curve[-1]["time_s"] - curve[0]["time_s"]
        record["frames_per_s"] = record["frames"] * (len(curve) - 1) / span
    record["epochs"] = len(curve)
    record["first_epoch_s"] = curve[0]["time_s"]
    return record


def time_to_reach(record: dict, target: float) -> float | None:
    for point, best in zip(record.get("curve") or [], record.get("best_curve") or [], strict=False):
        if best <= target:
            return point["time_s"]
    return None


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for record in records:
        if record.get("curve"):
            ax.plot(
                [p["time_s"] / 60 for p in record["curve"]],
                [1000 * b for b in record["best_curve"]],
                label=record["engine"],
            )
    ax.set_xlabel("wall time (min), one CPU core")
    ax.set_ylabel("best validation force MAE (meV/Å)")
    ax.set_yscale("log")
    ax.set_title("Ethanol (850 training frames): time to accuracy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--engines", default="painn,painn-small,apax", help=f"from {', '.join([*OURS, 'apax'])}")
    parser.add_argument("--apax-record", type=Path, help="reuse apax's JSON line from an earlier train_apax.py run")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "time_to_accuracy.json")
    parser.add_argument("--plot", type=Path, default=HERE / "results" / "time_to_accuracy.png")
    args = parser.parse_args()
    for split in ("train", "valid"):
        if not (SPLITS / f"ethanol_{split}.xyz").is_file():
            sys.exit("ethanol splits missing: run `python examples/benchmarks/make_splits.py ethanol` first")
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)  # cold compiles, as a new user sees them

    records = []
    for name in args.engines.split(","):
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {args.minutes:g} min", flush=True)
        if name == "apax" and args.apax_record:
            record = json.loads(args.apax_record.read_text().splitlines()[-1]) | {"engine": "apax GMNN"}
        elif name == "apax":
            record = train_apax(args.minutes)
        else:
            record = train_ours(name, args.minutes)
        records.append(summarise(record, args.minutes))
        at = record.get("valid_forces_mae_at", {})
        shown = ", ".join(f"{k} {1000 * v:.1f}" for k, v in at.items() if v is not None)
        print(
            f"  {record['status']}: {shown} meV/Å; {record.get('frames_per_s', float('nan')):.0f} frames/s", flush=True
        )

    apax = next((r for r in records if r["engine"] == "apax GMNN" and r.get("curve")), None)
    if apax:
        target = apax["best_curve"][-1]
        apax_time = time_to_reach(apax, target)
        for record in records:
            reached = time_to_reach(record, target)
            record["time_to_apax_final_mae_s"] = reached
            record["apax_time_over_ours"] = apax_time / reached if reached else None
            if record is not apax:
                record["frames_per_s_over_apax"] = record.get("frames_per_s", 0) / apax["frames_per_s"]
        print(f"target: apax's final {1000 * target:.1f} meV/Å, reached by apax at {apax_time:.0f} s")
        for record in records:
            reached = record["time_to_apax_final_mae_s"]
            print(f"  {record['engine']}: {'not reached' if reached is None else f'{reached:.0f} s'}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"minutes": args.minutes, "records": records}, indent=1))
    plot(records, args.plot)
    print(f"wrote {args.json} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
