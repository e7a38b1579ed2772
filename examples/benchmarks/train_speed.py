r"""Training throughput of a recipe: compile time and milliseconds per optimiser step.

    python examples/benchmarks/train_speed.py examples/benchmarks/ethanol-cpu.yaml \
        --variant base --variant wide:model.features=128 --steps 50

Each ``--variant NAME[:KEY=VALUE,...]`` overrides the recipe (as ``mlpot train -o``) and is timed on
the recipe's training frames: the first step (compile + run), then ``--steps`` more, synchronised
once at the end, on whatever device JAX picks (CPU or GPU). Prints one row per variant.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from mlpot import data
from mlpot.training import config as config_mod
from mlpot.training.prepare import prepare
from mlpot.training.run import build
from mlpot.training.trainer import weights_at


def time_variant(path: str, overrides: list[str], steps: int) -> dict:
    config = config_mod.validate(config_mod.load(path, overrides + ["test_file=null"]))
    prepared = prepare(config)
    loop, state, _, _ = build(config, prepared)
    n = len(prepared.train.frames)
    batches = [
        data.collate(loop.train, np.arange(k, k + config.batch_size) % n, config.batch_size)
        for k in range(0, (steps + 1) * config.batch_size, config.batch_size)
    ]
    weights, lr = weights_at(config, 0), np.float64(1e-4)
    start = time.perf_counter()
    state, stats = loop.step_fn(state, *batches[0], weights, lr)
    jax.block_until_ready(stats)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for graph, labels in batches[1:]:
        state, stats = loop.step_fn(state, graph, labels, weights, lr)
    jax.block_until_ready(stats)
    per_step = (time.perf_counter() - start) / steps
    params = sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(state.params))
    return {"params": params, "first_s": first, "ms_per_step": 1e3 * per_step, "batch": config.batch_size, "frames": n}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--variant", action="append", default=None, help="NAME[:KEY=VALUE,...] (repeatable)")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args(argv)
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}")
    for variant in args.variant or ["recipe"]:
        name, _, spec = variant.partition(":")
        overrides = [s for s in spec.split(",") if s]
        row = time_variant(args.config, overrides, args.steps)
        epoch = row["ms_per_step"] * -(-row["frames"] // row["batch"]) / 1e3
        print(
            f"{name:>12}: {row['params']:>9,} params, batch {row['batch']:>3}, first step {row['first_s']:6.1f} s, "
            f"{row['ms_per_step']:7.2f} ms/step, {epoch:6.2f} s/epoch ({row['frames']} frames)",
            flush=True,
        )


if __name__ == "__main__":
    main()
