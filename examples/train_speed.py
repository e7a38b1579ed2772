"""Training throughput: frames/s per epoch after compilation, and compile time.

    python examples/train_speed.py datasets/ethanol/train.xyz --epochs 2
    python examples/train_speed.py ../shared/data/water_deepmd/water_192.xyz --batch-size 2

Prints one line per measured epoch. Compile time = first step's wall time minus
a steady-state step. Nothing here asserts a speed: the numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import mlpot  # noqa: F401
from mlpot import data
from mlpot.training import TrainConfig
from mlpot.training.optim import PlateauState
from mlpot.training.prepare import prepare
from mlpot.training.run import build
from mlpot.training.trainer import run_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--interactions", type=int, default=3)
    parser.add_argument("--model", default="painn")
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    config = TrainConfig(
        train_file=args.data,
        batch_size=args.batch_size,
        cutoff=args.cutoff,
        progress=False,
        model={"name": args.model, "features": args.features, "num_interactions": args.interactions},
        valid_fraction=0.05,
        output_dir=tempfile.mkdtemp(prefix="mlpot_train_speed_"),  # nothing of it is kept
    )
    start = time.perf_counter()
    frames = data.read_frames(args.data)[: args.frames]
    prepared = prepare(config, frames)
    print(f"read + neighbour lists: {time.perf_counter() - start:.1f} s for {len(frames)} frames")
    loop, state, _, _ = build(config, prepared)
    graph, labels = data.collate(prepared.train, np.arange(config.batch_size), config.batch_size)
    weights = (np.float64(1.0), np.float64(10.0), np.float64(0.0))
    from mlpot.training.loss import LossWeights

    t0 = time.perf_counter()
    s1, _ = loop.step_fn(state, graph, labels, LossWeights(*weights), np.float64(1e-3))
    float(s1.step)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    s2, _ = loop.step_fn(s1, graph, labels, LossWeights(*weights), np.float64(1e-3))
    float(s2.step)
    steady = time.perf_counter() - t0
    print(f"compile (first step minus a steady step): {first - steady:.1f} s; steady step {steady * 1e3:.0f} ms")
    plateau = PlateauState(1.0, np.inf, 0)
    state, _ = run_epoch(loop, state, 0, plateau)  # compiles the remaining bucket shapes
    n = len(prepared.train.frames)
    atoms = np.mean([len(f.atoms) for f in prepared.train.frames])
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        state, _row = run_epoch(loop, state, epoch, plateau)
        dt = time.perf_counter() - t0
        print(
            f"epoch {epoch}: {n} frames ({atoms:.0f} atoms each) in {dt:.1f} s = {n / dt:.1f} frames/s, "
            f"{n * atoms / dt:.0f} atoms/s; compiled programs {loop.step_fn._cache_size()}; "
            f"load avg {os.getloadavg()[0]:.1f}"
        )


if __name__ == "__main__":
    main()
