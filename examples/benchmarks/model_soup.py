"""Greedy model soup (Wortsman et al. 2022): average the parameters of fine-tunes of one model.

Fine-tunes that start from one model stay near it, so a uniform average of their parameters can
beat each of them, at no cost at prediction time. Greedy: rank the models by validation loss, start
from the best, and keep each next one only if averaging it in lowers the validation loss.

    python examples/benchmarks/model_soup.py runs/benchmarks/splits/ethanol_valid.xyz \\
        models/ethanol-single.mlpot runs/benchmarks/ethanol-*/model.mlpot --weights 100 10 0 -o soup.mlpot

The loss is w_E RMSE(E/atom)^2 + w_F RMSE(F)^2 + w_S RMSE(stress)^2 in eV and Å (the ``mse``
training loss). Session 19 (examples/benchmarks/HISTORY.md) found no soup 1 % better than the shipped models.
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from mlpot.potential import Potential, load
from mlpot.training.evaluation import evaluate_files


def average(potentials: list[Potential]) -> Potential:
    """The first potential with the uniform mean of all their parameters (summed in float64).

    Refuses potentials of different configurations: their parameters do not mean the same thing."""
    first = potentials[0]
    for other in potentials[1:]:
        if other.config.to_dict() != first.config.to_dict():
            changed = sorted(k for k, v in other.config.to_dict().items() if first.config.to_dict()[k] != v)
            raise ValueError(f"cannot average models whose configurations differ in {', '.join(changed)}")
    mean = jax.tree_util.tree_map(
        lambda *xs: np.asarray(sum(np.asarray(x, np.float64) for x in xs) / len(xs), np.asarray(xs[0]).dtype),
        *[p.params for p in potentials],
    )
    return first.replace_params(jax.tree_util.tree_map(jax.numpy.asarray, mean))


def validation_loss(potential: Potential, path, weights) -> tuple[float, dict]:
    """The weighted loss (E per atom, F, stress) on ``path``; a weighted term with no labelled frame is
    refused (read as 0 it made two weightings look equal, and compare_models refuses it too)."""
    metrics, _ = evaluate_files(potential, path)
    keys = ("energy_rmse_per_atom", "forces_rmse", "stress_rmse")
    missing = [key.split("_")[0] for key, w in zip(keys, weights) if w > 0 and key not in metrics]
    if missing:
        raise ValueError(f"{path}: no frame has a {' or '.join(missing)} label, but its loss weight is above 0")
    return float(sum(w * metrics.get(key, 0.0) ** 2 for w, key in zip(weights, keys))), metrics


def greedy(potentials: list[Potential], score) -> tuple[list[int], float, list[float]]:
    """(indices of the soup, its score, each potential's own score): ``score(potential)`` is lower
    for better models."""
    own = [score(p) for p in potentials]
    ranked = sorted(range(len(potentials)), key=own.__getitem__)
    chosen, best = [ranked[0]], own[ranked[0]]
    for k in ranked[1:]:
        trial = score(average([potentials[i] for i in chosen + [k]]))
        if trial < best:
            chosen, best = chosen + [k], trial
    return chosen, best, own


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("valid", help="labelled validation frames (extxyz)")
    parser.add_argument("models", nargs="+", help=".mlpot files of one configuration")
    parser.add_argument("--weights", nargs=3, type=float, default=(100.0, 10.0, 0.0), metavar=("E", "F", "S"))
    parser.add_argument("-o", "--output", help="write the soup here (when it has two or more models)")
    args = parser.parse_args(argv)
    potentials = [load(path) for path in args.models]
    chosen, loss, own = greedy(potentials, lambda p: validation_loss(p, args.valid, args.weights)[0])
    for path, value in zip(args.models, own):
        print(f"{path}: validation loss {value:.5e}")
    print("soup:", ", ".join(args.models[k] for k in chosen), f"validation loss {loss:.5e}")
    if args.output and len(chosen) > 1:
        average([potentials[k] for k in chosen]).save(args.output)
        print("written", args.output)


if __name__ == "__main__":
    main()
