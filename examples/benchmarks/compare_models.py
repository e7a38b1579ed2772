"""Is model B better than model A on these frames? A paired bootstrap of the validation-score ratio.

One model's loss on 50 frames has a large sampling spread (28 % relative for the shipped ethanol
model: its force errors have heavy tails), but two models see the same frames, and most of that
spread is shared. Resampling the frames, the same draw for both, gives the spread of the *ratio*
loss(B) / loss(A), which is what a "ship B if it is 1 % better" rule is about:

    python examples/benchmarks/compare_models.py runs/benchmarks/splits/ethanol_valid.xyz \\
        models/ethanol.mlpot runs/benchmarks/ethanol-ft23c/model.mlpot --weights 100 10 0

The score is the ``mse`` training loss, w_E mean((dE/N)^2) + w_F mean(dF^2) + w_S mean(dsigma^2),
in eV and Å (as ``model_soup.py`` scores), or with ``--metric forces_mae`` the force MAE that the
accuracy targets use: a squared loss is led by the worst frames (on the 50 ethanol validation frames
one frame holds 28 % of the shipped model's squared force error), the MAE much less. Every frame
must carry an energy and forces label, and a stress label too when w_S > 0, so that each frame
contributes to every term it is resampled into.
"""

from __future__ import annotations

import argparse

import numpy as np

from mlpot.training.evaluation import evaluate_files
from mlpot.training.metrics import concatenate


class FrameErrors:
    """Per-frame sums of squared errors: energy per atom (1 value), forces (3N), stress (9 or 0);
    and of absolute force errors (3N)."""

    def __init__(self, model, path, need_stress: bool, keys=("energy", "forces", "stress")):
        energy_key, forces_key, stress_key = keys
        _, collected = evaluate_files(model, path, energy_key=energy_key, forces_key=forces_key, stress_key=stress_key)
        pairs = concatenate(collected)
        n_atoms = pairs["n_atoms"]
        n_frames = pairs["n_frames"]
        if len(n_atoms) != n_frames or len(pairs["forces"][0]) != int(n_atoms.sum()):
            raise ValueError(f"{path}: every frame needs an energy and a forces label for a paired comparison")
        self.energy = ((pairs["energy"][0] - pairs["energy"][1]) / n_atoms) ** 2
        force_error = pairs["forces"][0] - pairs["forces"][1]
        starts = np.concatenate([[0], np.cumsum(n_atoms)[:-1]])
        self.forces = np.add.reduceat(np.sum(force_error**2, axis=1), starts)
        self.forces_abs = np.add.reduceat(np.sum(np.abs(force_error), axis=1), starts)
        self.force_components = 3 * n_atoms
        stress_sq = (pairs["stress"][0] - pairs["stress"][1]) ** 2
        if need_stress and stress_sq.size != 9 * n_frames:
            raise ValueError(f"{path}: stress weight > 0 but not every frame has a stress label")
        self.stress = stress_sq.reshape(n_frames, 9).sum(axis=1) if need_stress else np.zeros(n_frames)

    def loss(self, frames: np.ndarray, weights) -> float:
        """The training loss over ``frames`` (indices, repeats allowed)."""
        w_e, w_f, w_s = weights
        return float(
            w_e * self.energy[frames].mean()
            + w_f * self.forces[frames].sum() / self.force_components[frames].sum()
            + w_s * self.stress[frames].sum() / (9 * len(frames))
        )

    def forces_mae(self, frames: np.ndarray) -> float:
        """The force MAE (eV/Å) over ``frames`` (indices, repeats allowed)."""
        return float(self.forces_abs[frames].sum() / self.force_components[frames].sum())


def paired_bootstrap(a: FrameErrors, b: FrameErrors, score, draws: int = 20000, seed: int = 0) -> np.ndarray:
    """score(B) / score(A) over ``draws`` resamplings of the frames, the same resampling for both;
    ``score(errors, frames) -> float``."""
    rng = np.random.default_rng(seed)
    n = len(a.energy)
    samples = rng.integers(0, n, size=(draws, n))
    return np.array([score(b, s) / score(a, s) for s in samples])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames", help="labelled frames both models never trained on (extxyz)")
    parser.add_argument("model_a", help="the reference model (.mlpot), e.g. the shipped one")
    parser.add_argument("model_b", help="the candidate (.mlpot)")
    parser.add_argument("--weights", nargs=3, type=float, default=(100.0, 10.0, 0.0), metavar=("E", "F", "S"))
    parser.add_argument("--metric", choices=("loss", "forces_mae"), default="loss")
    parser.add_argument("--draws", type=int, default=20000)
    for label in ("energy", "forces", "stress"):
        parser.add_argument(f"--{label}-key", default=label, metavar="NAME", help=f"label name of the {label}")
    args = parser.parse_args(argv)
    if args.draws < 100:  # a 90 % interval from fewer draws is noise (0: np.quantile of nothing)
        parser.error(f"--draws {args.draws}: give at least 100 (default 20000)")
    need_stress = args.metric == "loss" and args.weights[2] > 0
    keys = (args.energy_key, args.forces_key, args.stress_key)
    a = FrameErrors(args.model_a, args.frames, need_stress, keys)
    b = FrameErrors(args.model_b, args.frames, need_stress, keys)

    def score(errors: FrameErrors, frames: np.ndarray) -> float:
        return errors.loss(frames, args.weights) if args.metric == "loss" else errors.forces_mae(frames)

    everything = np.arange(len(a.energy))
    score_a, score_b = score(a, everything), score(b, everything)
    if score_a <= 0:  # every ratio would be inf or NaN
        raise SystemExit(
            f"compare_models: model A's {args.metric} is 0 on these frames (are they its own predictions?): no ratio"
        )
    ratios = paired_bootstrap(a, b, score, args.draws)
    low, high = np.quantile(ratios, [0.05, 0.95])
    print(f"{len(everything)} frames; {args.metric} A {score_a:.5e}, B {score_b:.5e}; B/A {score_b / score_a:.4f}")
    print(
        f"paired bootstrap ({args.draws} draws): 90 % interval of B/A [{low:.4f}, {high:.4f}], P(B/A < 1) {np.mean(ratios < 1):.3f}"
    )


if __name__ == "__main__":
    main()
