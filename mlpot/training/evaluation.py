"""A model's errors on labelled structure files: ``evaluate_files`` (``mlpot eval``, the benchmarks).

Label names are checked before any prediction: a custom key that labels no frame is a typo, and a
file without energy or forces leaves nothing to evaluate; ``label_hint`` names likely other keys.
``worst_frames`` names the frames with the largest errors: an average hides the few structures
(hot, strained, mislabelled) that a squared loss and the user's MD care most about.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from mlpot import data
from mlpot.potential import Potential
from mlpot.reading import Frame
from mlpot.training.metrics import concatenate, summarise
from mlpot.training.trainer import evaluate, jitted_predict


def evaluate_files(
    potential,
    paths,
    batch_size: int = 8,
    energy_key: str = "energy",
    forces_key: str = "forces",
    stress_key: str = "stress",
    group_by: str | None = None,
    worst: int = 0,
):
    """(metrics, collected pairs) of a ``Potential`` (or model file path) on labelled structure files.

    With ``group_by`` (a key of ``atoms.info``, e.g. ``config_type``) the metrics also hold
    ``by_<key>``: the same metrics for each value of that key, because one error over a mixed
    test set hides which kind of structure (bulk, surface, vacancy) a model gets wrong.
    With ``worst`` > 0 they hold ``worst_frames``: ``worst_frames`` of that many frames.
    """
    from mlpot.potential import load, require_x64

    require_x64("mlpot evaluation")  # else float32 energy sums and references: errors off by ~0.01 meV and more
    potential = potential if isinstance(potential, Potential) else load(potential)
    paths = _path_list(paths)
    frames = data.read_frames(paths, energy_key, forces_key, stress_key, required=(), species=potential.config.species)
    _check_label_keys(frames, paths, {"energy": energy_key, "forces": forces_key, "stress": stress_key})
    if repeats := data.repeated_frames(frames):
        warnings.warn(
            f"{len(repeats)} of {len(frames)} frames repeat an earlier one and count again in every error (first: "
            f"{repeats[0][1]} = {repeats[0][0]}); give each file once",
            stacklevel=2,
        )
    dataset = data.prepare(frames, potential.config.cutoff, potential.config.species)
    if not group_by:
        metrics, collected = evaluate(potential, dataset, batch_size)
        order = range(len(dataset.frames))
    else:
        groups, collected, order = _evaluate_groups(potential, dataset, batch_size, group_by, paths)
        metrics = summarise(collected)  # the groups partition the frames: each is predicted once
        metrics[f"by_{group_by}"] = groups
    if worst:
        metrics["worst_frames"] = worst_frames([dataset.frames[k] for k in order], collected, worst)
    return metrics, collected


def worst_frames(frames: list[Frame], collected: list[dict], count: int) -> list[dict]:
    """The ``count`` frames with the largest force RMSE (with no force labels: energy error per atom).

    ``frames`` in the order ``collected`` holds them. Each entry: ``where`` ("file, frame k"),
    ``atoms``, ``forces_rmse`` and ``forces_max_error`` (largest component error; eV/Å, None
    without a force label), ``energy_error_per_atom`` (prediction - label, eV/atom; None without).
    """
    pairs = concatenate(collected)
    empty = {"forces_rmse": None, "forces_max_error": None, "energy_error_per_atom": None}
    rows = [{"where": f.where, "atoms": len(f.atoms), **empty} for f in frames]
    labelled = [k for k, f in enumerate(frames) if f.energy is not None]
    energy_error = (pairs["energy"][0] - pairs["energy"][1]) / np.maximum(pairs["n_atoms"], 1)
    for k, error in zip(labelled, energy_error, strict=True):
        rows[k]["energy_error_per_atom"] = float(error)
    with_forces = [k for k, f in enumerate(frames) if f.forces is not None]
    ends = np.cumsum([len(frames[k].atoms) for k in with_forces], dtype=int)
    error = pairs["forces"][0] - pairs["forces"][1]
    labelled_atoms = int(ends[-1]) if with_forces else 0
    if len(error) != labelled_atoms:  # frames and pairs out of step: say so, never misattribute
        raise ValueError(f"worst_frames: {len(error)} force pairs for {labelled_atoms} labelled atoms")
    for k, block in zip(with_forces, np.split(error, ends[:-1]) if with_forces else [], strict=True):
        rows[k]["forces_rmse"] = float(np.sqrt(np.mean(block**2)))
        rows[k]["forces_max_error"] = float(np.max(np.abs(block)))
    if with_forces:
        ranked = sorted(with_forces, key=lambda k: -rows[k]["forces_rmse"])
    else:
        ranked = sorted(labelled, key=lambda k: -abs(rows[k]["energy_error_per_atom"]))
    return [rows[k] for k in ranked[:count]]


def _path_list(paths) -> list:
    """One file or many, as ``data.read_frames`` takes them."""
    return [paths] if isinstance(paths, (str, Path)) else list(paths)


def _check_label_keys(frames, paths, keys: dict) -> None:
    """Before any prediction: a label name that is not the default and labels no frame is a typo, and
    frames without energy or forces leave nothing to evaluate (errors would silently be missing)."""
    names = ", ".join(map(str, paths))
    found = {q: sum(getattr(f, q) is not None for f in frames) for q in keys}
    periodic = any(all(f.atoms.pbc) for f in frames)  # only they can carry stress
    for q, key in keys.items():
        if key != q and found[q] == 0 and (q != "stress" or periodic):
            why = "; only periodic frames have stress" if q == "stress" else ""
            raise ValueError(f"no frame of {names} has the {q} label '{key}' ({q}_key, --{q}-key{why})")
    if found["energy"] == found["forces"] == 0:
        raise ValueError(
            f"nothing to evaluate: no frame of {names} has an energy label '{keys['energy']}' or a forces label "
            f"'{keys['forces']}'; {label_hint(paths, ('energy', 'forces'))}"
        )


# parts of label names that say what they hold: REF_energy, DFT_forces, virial_stress, ...
_STEMS = {"energy": "energ", "forces": "force", "stress": "stress"}


def label_hint(paths, quantities) -> str:
    """How to point evaluation at labels stored under other names, naming likely ones in the first frames."""
    import ase.io

    found = set()
    for path in _path_list(paths):
        atoms = ase.io.read(path, index=0)
        results = atoms.calc.results if atoms.calc is not None else {}
        for name in (*results, *atoms.info, *atoms.arrays):
            found.update((q, name) for q in quantities if _STEMS[q] in name.lower() and name != q)
    options = " ".join(f"--{q}-key {name}" for q, name in sorted(found))
    if options:
        return f"the files have other label names: try {options} ({quantities[0]}_key=... in Python)"
    return "if the labels are stored under other names, give them, e.g. " + " ".join(
        f"--{q}-key REF_{q}" for q in quantities
    )


def _evaluate_groups(potential, dataset, batch_size: int, key: str, paths) -> tuple[dict, list, list]:
    """(metrics per value of ``atoms.info[key]``, collected pairs of every frame, the frames' indices
    in the order the pairs hold them)."""
    values = [frame.atoms.info.get(key) for frame in dataset.frames]
    if all(value is None for value in values):
        names = ", ".join(map(str, paths))
        raise ValueError(f"no frame of {names} has '{key}' in its info (the comment line of an extxyz frame)")
    labels = [f"(no {key})" if value is None else str(value) for value in values]
    # One compiled predict for every group: stress on or off as for the whole set.
    predict = jitted_predict(potential, data.has_stress(dataset.frames))
    groups, collected, order = {}, [], []
    for label in sorted(set(labels)):
        indices = [k for k, name in enumerate(labels) if name == label]
        groups[label], pairs = evaluate(potential, data.subset(dataset, indices), batch_size, predict)
        collected.extend(pairs)
        order.extend(indices)
    return groups, collected, order
