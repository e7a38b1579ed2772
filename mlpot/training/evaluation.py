"""A model's errors on labelled structure files: ``evaluate_files`` (``mlpot eval``, the benchmarks).

Label names are checked before any prediction: a custom key that labels no frame is a typo, and a
file without energy or forces leaves nothing to evaluate; ``label_hint`` names likely other keys.
"""

from __future__ import annotations

from pathlib import Path

from mlpot import data
from mlpot.potential import Potential
from mlpot.training.metrics import summarise
from mlpot.training.trainer import evaluate, jitted_predict


def evaluate_files(
    potential,
    paths,
    batch_size: int = 8,
    energy_key: str = "energy",
    forces_key: str = "forces",
    stress_key: str = "stress",
    group_by: str | None = None,
):
    """(metrics, collected pairs) of a ``Potential`` (or model file path) on labelled structure files.

    With ``group_by`` (a key of ``atoms.info``, e.g. ``config_type``) the metrics also hold
    ``by_<key>``: the same metrics for each value of that key, because one error over a mixed
    test set hides which kind of structure (bulk, surface, vacancy) a model gets wrong.
    """
    from mlpot.potential import load

    potential = potential if isinstance(potential, Potential) else load(potential)
    paths = _path_list(paths)
    frames = data.read_frames(paths, energy_key, forces_key, stress_key, required=(), species=potential.config.species)
    _check_label_keys(frames, paths, {"energy": energy_key, "forces": forces_key, "stress": stress_key})
    dataset = data.prepare(frames, potential.config.cutoff, potential.config.species)
    if not group_by:
        return evaluate(potential, dataset, batch_size)
    groups, collected = _evaluate_groups(potential, dataset, batch_size, group_by, paths)
    metrics = summarise(collected)  # the groups partition the frames: each is predicted once
    metrics[f"by_{group_by}"] = groups
    return metrics, collected


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


def _evaluate_groups(potential, dataset, batch_size: int, key: str, paths) -> tuple[dict, list]:
    """(metrics per value of ``atoms.info[key]``, collected pairs of every frame)."""
    values = [frame.atoms.info.get(key) for frame in dataset.frames]
    if all(value is None for value in values):
        names = ", ".join(map(str, paths))
        raise ValueError(f"no frame of {names} has '{key}' in its info (the comment line of an extxyz frame)")
    labels = [f"(no {key})" if value is None else str(value) for value in values]
    # One compiled predict for every group: stress on or off as for the whole set.
    predict = jitted_predict(potential, data.has_stress(dataset.frames))
    groups, collected = {}, []
    for label in sorted(set(labels)):
        indices = [k for k, name in enumerate(labels) if name == label]
        groups[label], pairs = evaluate(potential, data.subset(dataset, indices), batch_size, predict)
        collected.extend(pairs)
    return groups, collected
