"""Training throughput of mlpot: training frames/s per epoch after compilation.

Run with the project's own environment:
  .venv/bin/python benchmarks/peers/run_mlpot_train.py [--quick]

Uses the real pipeline (``mlpot.training.run.fit``: batching, jitted train
step, validation, checkpoints at most every 10 s) on ethanol (9 atoms; first 1000
frames, 200 with --quick) and water (192 atoms; first 64 frames, 16 with
--quick). Epoch 1 includes compilation and is reported apart; frames/s is
training frames x timed epochs / their wall time (validation included, as a
user sees it). One JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

import common

sys.path.insert(0, str(common.structures.ROOT))

RUNS = [  # (data, file under the shared data folder, frames, quick frames, model, batch size)
    ("ethanol", "ethanol_pbe/train.xyz", 1000, 200, {"name": "painn", "features": 64, "num_interactions": 3}, 8),
    ("ethanol", "ethanol_pbe/train.xyz", 1000, 200, {"name": "mace"}, 8),
    ("water", "water_deepmd/water_192.xyz", 64, 16, {"name": "painn", "features": 64, "num_interactions": 3}, 4),
]


def measure(name, relative, frames, model, batch_size, epochs) -> dict:
    from mlpot.training import config as config_mod
    from mlpot.training.prepare import prepare, read
    from mlpot.training.run import fit

    record = {"mode": "training", "data": name, "model": model["name"], "batch_size": batch_size}
    with tempfile.TemporaryDirectory() as out:
        config = config_mod.from_dict(
            {
                "train_file": str(common.structures.data_dir() / relative),
                "valid_fraction": 0.05,
                "model": model,
                "cutoff": common.CUTOFF,
                "batch_size": batch_size,
                "epochs": epochs,
                "output_dir": out,
                "progress": False,
            }
        )
        prepared = prepare(config, read(config, config.train_file)[:frames])
        start = time.perf_counter()
        result = fit(config, prepared)
        total = time.perf_counter() - start
    times = [row["time_s"] for row in result.history]  # cumulative seconds at each epoch's end
    n_train = len(prepared.train.frames)
    record.update(
        frames=n_train,
        epochs_timed=len(times) - 1,
        first_epoch_s=times[0],
        total_s=total,
        frames_per_s=n_train * (len(times) - 1) / (times[-1] - times[0]),
        valid_forces_mae=result.valid_metrics.get("forces_mae"),
        peak_rss_mb=common.peak_rss_mb(),
    )
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for name, relative, frames, quick_frames, model, batch in RUNS:
        if args.quick and model["name"] != "painn":
            continue
        try:
            record = measure(name, relative, quick_frames if args.quick else frames, model, batch, 3)
            record["status"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, never hidden
            record = {
                "mode": "training",
                "data": name,
                "model": model["name"],
                "frames": frames,
                "batch_size": batch,
                "status": "failed",
                "error": f"{type(exc).__name__}: {exc}",
            }
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
