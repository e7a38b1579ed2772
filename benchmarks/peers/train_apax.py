"""apax (GMNN) training on the ethanol splits: throughput and time to accuracy.

Run inside benchmarks/peers/.venv-apax (after
``python examples/benchmarks/make_splits.py ethanol`` in ours):
  benchmarks/peers/.venv-apax/bin/python benchmarks/peers/train_apax.py --minutes 20

What runs: ``apax train`` on apax's full template (``apax template train
--full``, i.e. apax's defaults: GMNN, nn [256, 256], 16 Bessel functions,
r_max 5 Å, Adam with a cyclic cosine schedule, batch 4) with only the data
paths, sizes and the epoch count set. Training and validation frames are our
ethanol splits (850 / 50), the same files our recipes train on. apax writes
one CSV row per epoch (``log.csv``); this script polls it and stamps each row
with the wall time since the command started (compiles and dataset
preparation included, as for ours), and stops apax at ``--minutes``.

Prints one JSON line: frames/s after the first epoch, validation force MAE
(best so far) reached at 5, 10 and 20 minutes, and every stamped epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/: time_to_accuracy (standard library only at import)

import time_to_accuracy as tta

SPLITS = tta.SPLITS


def count_frames(path: Path) -> int:
    from ase.io import read

    return len(read(path, index=":"))


def apax_config(workdir: Path, train: Path, valid: Path, epochs: int) -> dict:
    apax = Path(sys.executable).with_name("apax")
    subprocess.run([str(apax), "template", "train", "--full"], cwd=workdir, check=True, capture_output=True)
    config = yaml.safe_load((workdir / "config_full.yaml").read_text())
    config["n_epochs"] = epochs
    # The template lists transfer learning with a null checkpoint, which apax
    # 0.14 then tries to load; leaving the section out is apax's default.
    config.pop("transfer_learning", None)
    config["data"].pop("data_path", None)
    config["data"].update(
        directory=str(workdir / "models"),
        experiment="ethanol",
        train_data_path=str(train),
        val_data_path=str(valid),
        n_train=count_frames(train),
        n_valid=count_frames(valid),
    )
    config["progress_bar"] = {"disable_epoch_pbar": True, "disable_batch_pbar": True}
    return config


def force_mae_column(row: dict) -> str:
    names = [k for k in row if "val" in k and "forces" in k and "mae" in k]
    if not names:
        raise KeyError(f"no validation force MAE column in apax's log.csv: {sorted(row)}")
    return names[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="wall-time budget; apax is stopped then")
    parser.add_argument("--epochs", type=int, default=5000, help="apax's n_epochs (the schedule's length)")
    parser.add_argument("--json", type=Path, help="also append the record here")
    args = parser.parse_args()
    train, valid = SPLITS / "ethanol_train.xyz", SPLITS / "ethanol_valid.xyz"
    for path in (train, valid):
        if not path.is_file():
            sys.exit(f"{path} is missing: run `python examples/benchmarks/make_splits.py ethanol` first")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = apax_config(workdir, train, valid, args.epochs)
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        log = workdir / "models" / "ethanol" / "log.csv"
        start = time.perf_counter()
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("apax")), "train", "config.yaml"],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        stamps, rows = tta.follow(process, log, start, 60 * args.minutes)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)

    record = {"mode": "training", "engine": "apax GMNN", "data": "ethanol", "minutes": args.minutes}
    if not rows:
        record.update(status="failed", error=(stderr or "no epoch logged").strip()[-500:])
    else:
        column = force_mae_column(rows[0])
        record.update(
            status="ok",
            frames=config["data"]["n_train"],
            unit="eV/Å (apax log)",
            curve=[
                {"time_s": t, "epoch": int(float(r["epoch"])), "valid_forces_mae": float(r[column])}
                for t, r in zip(stamps, rows, strict=True)
            ],
            settings={k: config["model"][k] for k in ("n_radial", "n_contr", "nn")}
            | {"batch_size": config["data"]["batch_size"]},
        )
        tta.summarise(record, args.minutes)  # the same reading of the curve as for ours
    line = json.dumps(record)
    print(line, flush=True)
    if args.json:
        with args.json.open("a") as handle:
            handle.write(line + "\n")


if __name__ == "__main__":
    main()
