"""Model selection: k-fold cross-validation and learning-curve studies.

Both reuse ``fit``; each run gets its own sub-folder of ``output_dir``. A study run again with
the same config reuses its finished runs and resumes a killed one (hours of folds are not
redone); a sub-folder holding a run of another config is refused unless ``overwrite``.

* ``cross_validate(config, k)``: the frames are split into k seeded folds;
  fold f is the test set of run f, and the run's validation set (for early
  stopping and best-model choice) is ``valid_fraction`` of the other folds,
  so no reported number was used for selection. Returns per-fold test metrics
  and their mean and standard deviation.
* ``learning_curve(config, sizes)``: a fixed test set (``test_file`` or
  ``test_fraction``, default 0.1) and a fixed validation set are held out;
  runs train on nested random subsets of growing size of the rest. Test
  errors vs size are plotted on log-log axes. Sizes given must fit in the
  frames left for training; without sizes, ``DEFAULT_SIZES`` up to that many.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from functools import partial
from pathlib import Path

import numpy as np

from mlpot import data
from mlpot.modelfile import atomic_write, write_json
from mlpot.training import config as config_mod
from mlpot.training import plots
from mlpot.training.config import TrainConfig
from mlpot.training.prepare import assemble, config_types, first_with_unseen_elements, read, weighted
from mlpot.training.run import as_config, fit, remove_run_outputs

DEFAULT_SIZES = (25, 50, 100, 200, 400, 800)
SPLIT_FILE = "split.sha256"
KEYS = ("energy_mae_per_atom", "energy_rmse_per_atom", "energy_mae", "forces_mae", "forces_rmse", "stress_mae")


def _split_valid(frames, fraction, seed):
    order = np.random.default_rng(seed).permutation(len(frames))
    n_valid = max(1, round(fraction * len(frames)))
    return [frames[k] for k in order[n_valid:]], [frames[k] for k in order[:n_valid]]


def _study_checks(config: TrainConfig, frames, study: str) -> None:
    """What a study checks once, before any run: ``config_type_weights`` names types the frames have
    (a misspelt name would weigh nothing), and ``valid_file`` (and, for cross-validation, the test frames)
    is noted as unused."""
    if config.config_type_weights:
        weighted(config, frames)  # refuses a type no frame has
    if config.valid_file:
        warnings.warn(
            f"{study}: valid_file {config.valid_file} is not used: each run draws its validation frames "
            "(valid_fraction) from its own training part",
            stacklevel=3,
        )
    if study == "cross-validation" and (config.test_file or config.test_fraction > 0):
        given = f"test_file {config.test_file}" if config.test_file else f"test_fraction {config.test_fraction:g}"
        warnings.warn(f"{study}: {given} is not used: each fold's test frames are the fold itself", stacklevel=3)


def _weights_for(config: TrainConfig, train, where: str) -> TrainConfig:
    """``config`` with only the ``config_type_weights`` whose type this run's training part has: a rare
    type can miss a fold or a small subset, which must not stop the study after hours of earlier runs."""
    weights = config.config_type_weights
    if not weights:
        return config
    present = config_types(train)
    kept = {k: v for k, v in weights.items() if str(k) in present}
    if len(kept) < len(weights):
        missing = ", ".join(repr(str(k)) for k in weights if str(k) not in present)
        warnings.warn(f"{where}: no training frame has config_type {missing}; its weight is unused there", stacklevel=3)
    return dataclasses.replace(config, config_type_weights=kept)


def _warn_untrained_elements(train, held_out, where: str) -> None:
    """A study's models know every element of the study (``species``), so a run whose training part
    lacks one scores held-out frames of it with a reference energy of 0 and a random embedding: its
    errors (eV per atom) go into the mean and the plot. Say so, naming the first such frame."""
    if found := first_with_unseen_elements(held_out, data.species_of_frames(train)):
        frame, names = found
        warnings.warn(
            f"{where}: no training frame has {names}, yet held-out frames do (first: {frame.where}); its "
            "model has never seen that element, and its errors on them are those of an untrained species",
            stacklevel=3,
        )


def _mean_std(runs: list[dict]) -> dict:
    """Mean and sample standard deviation (ddof=1: the folds are a sample of possible splits) per metric.

    A metric that only one fold has (stress when one fold alone holds the crystals) gets std None, not 0.
    """
    out = {}
    for key in KEYS:
        values = [r[key] for r in runs if key in r]
        if values:
            std = float(np.std(values, ddof=1)) if len(values) > 1 else None
            out[key] = {"mean": float(np.mean(values)), "std": std, "n_folds": len(values)}
    return out


def _usable_sizes(sizes, available: int, held_out: str) -> list[int]:
    """Sizes asked for must all be run (dropping one silently hid it); the default ladder stops at the data."""
    if sizes is None:
        usable = [s for s in DEFAULT_SIZES if s <= available]
        if not usable:
            raise ValueError(f"only {available} frames are left for training ({held_out}); give smaller --sizes")
        if len(usable) < len(DEFAULT_SIZES):
            skipped = ", ".join(str(s) for s in DEFAULT_SIZES if s > available)
            warnings.warn(
                f"default sizes {skipped} skipped: only {available} frames are left for training", stacklevel=3
            )
        return usable
    too_big = sorted({int(s) for s in sizes if int(s) > available})
    if too_big:
        raise ValueError(
            f"training-set size(s) {', '.join(map(str, too_big))} exceed the {available} frames left for training "
            f"({held_out})"
        )
    return sorted({int(s) for s in sizes})


def split_identity(train, valid, test, label: str) -> str:
    """sha256 of a run's frames (elements, positions, cell, energy), part by part, and of ``label`` (k and
    the fold): a run folder is reused only for the same frames in the same roles, since its config alone
    does not say which frames it was given (another k, or a changed data file)."""
    digest = hashlib.sha256(label.encode())
    for part in (train, valid, test or []):
        digest.update(b"|part|")
        for frame in part:
            digest.update(data.frame_identity(frame))
    return digest.hexdigest()


def _run(run_config: TrainConfig, prepared, overwrite: bool, split: str) -> dict:
    """The test metrics of ``run_config``'s run: read back if it finished, resumed if it was killed,
    else trained. ``prepared``: () -> the run's ``Prepared`` data (only built when needed); ``split``:
    its ``split_identity``."""
    out = Path(run_config.output_dir)
    saved, results, split_file = out / "config.yaml", out / "results.json", out / SPLIT_FILE
    if saved.is_file():
        same_config = saved.read_text() == config_mod.dump(run_config)
        same_split = split_file.is_file() and split_file.read_text().strip() == split
        if same_config and same_split:
            if results.is_file():
                print(f"{out}: finished with this config and these frames, reused", flush=True)
                return json.loads(results.read_text())["test"]
            if (out / "checkpoints" / "last.ckpt").is_file():
                return fit(run_config, prepared(), resume=True).test_metrics
        elif not overwrite:
            what = "other frames" if same_config else "another config"
            raise ValueError(
                f"{out} holds a run of {what} (another k, fold, data file or split): give another output_dir, "
                "or replace it (--overwrite; overwrite=True from Python)"
            )
    if saved.is_file():  # a killed run of another study left here must not be resumed, nor its results read
        remove_run_outputs(out, (SPLIT_FILE,))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(split_file, split.encode())
    return fit(run_config, prepared()).test_metrics


def cross_validate(config: TrainConfig | dict | str, k: int = 5, frames=None, overwrite: bool = False) -> dict:
    config = as_config(config)
    if k < 2:
        raise ValueError(f"cross-validation needs k >= 2 folds, got {k}")
    frames = read(config, config.train_file) if frames is None else frames
    left = len(frames) - -(-len(frames) // k)  # beside the largest fold
    if left < 2:  # each fold trains on one frame at least and validates on another
        raise ValueError(
            f"{len(frames)} frames in {k} folds leave {left} beside a fold, and a fold's model needs 2 "
            "(one to train on, one to validate): use fewer folds or more frames"
        )
    _study_checks(config, frames, "cross-validation")
    folds = np.array_split(np.random.default_rng(config.held_out_seed).permutation(len(frames)), k)
    # every fold's model knows every element: a rare one missing from a fold's training part must not
    # stop the study after hours of earlier folds (its errors then show that fold's gap)
    species = data.species_of_frames(frames)
    runs = []
    for f, fold in enumerate(folds):
        rest = [frames[i] for i in np.setdiff1d(np.arange(len(frames)), fold)]
        train, valid = _split_valid(rest, config.valid_fraction, config.held_out_seed + f)
        run_config = dataclasses.replace(config, output_dir=str(Path(config.output_dir) / f"fold_{f}"))
        run_config = _weights_for(run_config, train, f"cross-validation fold {f}")
        test = [frames[i] for i in fold]
        _warn_untrained_elements(train, valid + test, f"cross-validation fold {f}")
        split = split_identity(train, valid, test, f"cv k={k} fold={f}")
        runs.append(_run(run_config, partial(assemble, run_config, train, valid, test, species), overwrite, split))
    summary = {"k": k, "folds": runs, "summary": _mean_std(runs)}
    write_json(Path(config.output_dir) / "cv.json", summary)
    return summary


def learning_curve(config: TrainConfig | dict | str, sizes=None, frames=None, overwrite: bool = False) -> dict:
    config = as_config(config)
    if sizes is not None and any(int(s) < 1 for s in sizes):
        raise ValueError(f"training-set sizes must be at least 1, got {sorted(int(s) for s in sizes)}")
    frames = read(config, config.train_file) if frames is None else frames
    _study_checks(config, frames, "learning curve")
    order = np.random.default_rng(config.held_out_seed).permutation(len(frames))
    if config.test_file:
        test, pool = read(config, config.test_file), [frames[k] for k in order]
    else:
        n_test = max(1, round((config.test_fraction or 0.1) * len(frames)))
        test, pool = [frames[k] for k in order[:n_test]], [frames[k] for k in order[n_test:]]
    pool, valid = _split_valid(pool, config.valid_fraction, config.held_out_seed)
    held_out = f"of {len(frames)} read, {len(valid)} are held out for validation"
    held_out += "" if config.test_file else f" and {len(test)} for test"
    sizes = _usable_sizes(sizes, len(pool), held_out)
    species = data.species_of_frames(frames + test)  # as in cross_validate: small subsets may lack one
    runs = []
    for size in sizes:  # nested subsets: pool is already a random order
        run_config = dataclasses.replace(config, output_dir=str(Path(config.output_dir) / f"n_{size}"))
        run_config = _weights_for(run_config, pool[:size], f"learning curve n={size}")
        _warn_untrained_elements(pool[:size], valid + test, f"learning curve n={size}")
        split = split_identity(pool[:size], valid, test, f"learning curve n={size}")
        prepared = partial(assemble, run_config, pool[:size], valid, test, species)
        metrics = _run(run_config, prepared, overwrite, split)
        runs.append({"train_frames": size, **metrics})
    curves = {
        "energy MAE [meV/atom]": [r["energy_mae_per_atom"] for r in runs],
        "force MAE [meV/Å]": [r["forces_mae"] for r in runs],
    }
    out = Path(config.output_dir)
    plots.learning_curve_study(sizes, curves, out / "learning_curve.png")
    summary = {"sizes": sizes, "runs": runs, "test_frames": len(test), "valid_frames": len(valid)}
    write_json(out / "learning_curve.json", summary)
    return summary
