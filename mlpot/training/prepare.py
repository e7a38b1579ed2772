"""From a ``TrainConfig`` to ready data: frames read, split, referenced, neighbour lists cached."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, NamedTuple

import numpy as np

from mlpot import data, modelfile, repulsion
from mlpot.models import COMMITTEE
from mlpot.potential import ModelConfig, Potential
from mlpot.training.config import TrainConfig, model_defaults, model_fields


class Prepared(NamedTuple):
    train: data.Dataset
    valid: data.Dataset
    test: data.Dataset | None
    model_config: ModelConfig
    initial_params: Any = None  # the parameters of ``init_from`` (fine-tuning); None: a fresh model


def read(config: TrainConfig, paths, species=None) -> list:
    return data.read_frames(
        paths,
        config.energy_key,
        config.forces_key,
        config.stress_key,
        species=species,
        skip_bad_frames=config.skip_bad_frames,
        inconsistent_stress=config.inconsistent_stress,
    )


def data_hyperparameters(config: TrainConfig, train: data.Dataset) -> dict:
    """Model hyperparameters that describe the data, filled in when the model has them and the config
    leaves them out (by field name, for any model): ``avg_num_neighbors`` = mean neighbours per
    training atom within the cutoff (it normalises neighbour sums)."""
    fields = model_fields(config.model["name"])
    extra = {}
    if "avg_num_neighbors" in fields and "avg_num_neighbors" not in config.model:
        edges = sum(len(p[2]) for p in train.parts)
        atoms = sum(len(p[0]) for p in train.parts)
        extra["avg_num_neighbors"] = round(edges / max(atoms, 1), 6)
    return extra


def model_config(config: TrainConfig, train_frames, species, isolated=None, extra=None) -> ModelConfig:
    """Species, float64 reference energies and the energy scale, fitted on the training frames only."""
    reference = data.fit_reference_energies(train_frames, species, isolated)
    scale = data.fit_energy_scale(train_frames, species, reference)
    # Rounded to 1e-9 eV (far below any DFT precision): summation-order noise in the last bits would
    # otherwise make runs on equivalent data (CV folds, learning curves) bake different constants
    # into, and recompile, the same programs.
    reference = [round(float(e), 9) for e in reference]
    scale = float(f"{scale:.9g}")
    hyper = {**(extra or {}), **{k: v for k, v in config.model.items() if k != "name"}}
    frames_atoms, names = [f.atoms for f in train_frames], [f.where for f in train_frames]
    radii = (
        repulsion.radii_from_frames(frames_atoms, species, names=names, cutoff=config.cutoff)
        if config.repulsion
        else ()
    )
    return ModelConfig(
        name=config.model["name"],
        cutoff=config.cutoff,
        species=species,
        hyperparameters=hyper,
        reference_energies=tuple(reference),
        energy_scale=(scale,) * len(species),
        dtype=config.dtype,
        repulsion_radii=radii,
    )


def fine_tune_base(config: TrainConfig, frames) -> Potential:
    """The ``init_from`` model, checked against the config and the data.

    Fine-tuning keeps the file's species, reference energies, energy scale and repulsion radii (the
    network learned its energies relative to them), so the config must describe the same model:
    anything else is an error naming the key, not a silently different network.
    """
    base = modelfile.load(config.init_from)
    where = f"init_from {config.init_from}"
    mc = base.config
    if mc.name == COMMITTEE:
        raise ValueError(
            f"{where}: a committee is not trained; fine-tune each member (mlpot.models.committee.members, "
            "saved one by one) and assemble them again with mlpot committee"
        )
    if config.model["name"] != mc.name:
        raise ValueError(f"{where}: it is a '{mc.name}' model, the config's model.name is '{config.model['name']}'")
    # a key the file leaves out has the model's default: spelling that default out is the same model
    saved = {**model_defaults(mc.name), **mc.hyperparameters}
    for key, value in config.model.items():
        if key != "name" and saved.get(key) != value:
            raise ValueError(f"{where}: model.{key} is {saved.get(key)!r} there, {value!r} in the config")
    if config.cutoff != mc.cutoff or config.dtype != mc.dtype:
        raise ValueError(
            f"{where}: cutoff {mc.cutoff} Å and dtype {mc.dtype} there; the config has {config.cutoff} and {config.dtype}"
        )
    if config.repulsion != bool(mc.repulsion_radii):
        raise ValueError(
            f"{where}: it was trained with repulsion {bool(mc.repulsion_radii)} (a ZBL core), the config has "
            f"repulsion {config.repulsion}; set repulsion: {str(bool(mc.repulsion_radii)).lower()}"
        )
    if missing := sorted(set(data.species_of_frames(frames)) - set(mc.species)):
        from ase.data import chemical_symbols

        names = ", ".join(chemical_symbols[z] for z in missing)
        first = next(f.where for f in frames if set(f.atoms.numbers) & set(missing))
        raise ValueError(f"{where}: the data have elements the model was not trained on ({names}; first: {first})")
    return base


def _core_below(base: Potential, train, init_from) -> Potential:
    """The base model with its ZBL radii lowered to the fine-tuning frames' closest pairs where these come
    closer than its own training frames did (compressed, hot or reactive data): the core must stay zero
    on every training frame, or the network learns to cancel a wall. Only distances the base never saw
    change, so nothing it learned is lost."""
    from ase.data import chemical_symbols

    mc = base.config
    if not mc.repulsion_radii:
        return base
    closest = repulsion.closest_pairs([f.atoms for f in train], mc.species, names=[f.where for f in train])
    old = np.array(mc.repulsion_radii)
    fresh = np.array(repulsion.radii_from_closest(closest, mc.species, cutoff=mc.cutoff))
    radii = np.where(np.isfinite(closest), np.minimum(old, fresh), old)
    lowered = [(p, q) for p in range(len(radii)) for q in range(p, len(radii)) if radii[p, q] < old[p, q]]
    if not lowered:
        return base
    pairs = ", ".join(
        f"{chemical_symbols[mc.species[p]]}-{chemical_symbols[mc.species[q]]} {old[p, q]:.3f} -> {radii[p, q]:.3f} Å"
        for p, q in lowered
    )
    warnings.warn(
        f"init_from {init_from}: the training frames come closer than its ZBL core ({pairs}): the core radii "
        "are lowered so that the core stays zero on every training frame",
        stacklevel=3,
    )
    radii = tuple(tuple(float(r) for r in row) for row in radii)
    return Potential(dataclasses.replace(mc, repulsion_radii=radii), base.params)


def first_with_unseen_elements(frames, known) -> tuple[data.Frame, str] | None:
    """The first of ``frames`` with an element outside ``known`` (atomic numbers) and those elements'
    symbols ("Ag, Au"), or None."""
    from ase.data import chemical_symbols

    known = set(known)
    for frame in frames:
        if unseen := sorted(set(frame.atoms.numbers.tolist()) - known):
            return frame, ", ".join(chemical_symbols[z] for z in unseen)
    return None


def _refuse_unseen_elements(frames, species, name: str) -> None:
    """A held-out frame with an element the training frames lack would add an untrained species
    (reference energy 0, random embedding) to the model and score it: refuse, naming the frame."""
    if found := first_with_unseen_elements(frames, species):
        from ase.data import chemical_symbols

        frame, names = found
        trained = ", ".join(chemical_symbols[z] for z in species)
        raise data.InputError(
            f"{frame.where}: {name} frame with element(s) {names}, not among the model's elements ({trained}), "
            "which come from the training frames: a model cannot learn an element from held-out frames alone"
        )


def config_types(frames) -> set[str]:
    """The ``atoms.info["config_type"]`` values the frames have (as text, as config_type_weights keys are read)."""
    return {str(f.atoms.info["config_type"]) for f in frames if "config_type" in f.atoms.info}


def weighted(config: TrainConfig, train) -> list:
    """Training frames with their ``config_type_weights`` weight (1 for any other config type), scaled to
    mean 1 over the training frames so that the loss keeps its size and only the ratios count.

    Validation and test frames keep weight 1: model selection and reported errors stay unweighted.
    A config type that no training frame has is refused (a misspelt name would silently weigh nothing).
    """
    weights = config.config_type_weights
    if not weights:
        return train
    present = config_types(train)
    if missing := sorted(set(map(str, weights)) - present):
        raise data.InputError(
            f"config_type_weights: no training frame has config_type {', '.join(map(repr, missing))}; "
            f"the training frames' types are {sorted(present) or 'none (no atoms.info config_type)'}"
        )
    weights = {str(k): float(v) for k, v in weights.items()}
    raw = [weights.get(str(f.atoms.info.get("config_type")), 1.0) for f in train]
    mean = sum(raw) / len(raw)
    return [f._replace(weight=w / mean) for f, w in zip(train, raw)]


def split_frames(config: TrainConfig, frames):
    """(train, valid, test) frame lists; held-out fractions come from a seeded permutation."""
    valid_fraction = 0.0 if config.valid_file else config.valid_fraction
    test_fraction = 0.0 if config.test_file else config.test_fraction
    train_idx, valid_idx, test_idx = data.split_indices(
        len(frames), valid_fraction, test_fraction, config.held_out_seed
    )
    pick = lambda idx: [frames[k] for k in idx]
    valid = read(config, config.valid_file) if config.valid_file else pick(valid_idx)
    test = read(config, config.test_file) if config.test_file else (pick(test_idx) or None)
    return pick(train_idx), valid, test


def prepare(config: TrainConfig, frames=None, species=None) -> Prepared:
    """Read (unless ``frames`` given), split, fit references and cache neighbour lists."""
    frames = read(config, config.train_file) if frames is None else frames
    periodic = any(all(frame.atoms.pbc) for frame in frames)  # molecules have no stress to label
    if config.stress_key != "stress" and periodic and all(frame.stress is None for frame in frames):
        # a misspelt key would train without the stress term and say nothing
        files = config.train_file if isinstance(config.train_file, str) else ", ".join(map(str, config.train_file))
        raise data.InputError(
            f"{files}: no periodic training frame has a stress label '{config.stress_key}' (stress_key)"
        )
    return assemble(config, *split_frames(config, frames), species=species)


def assemble(config: TrainConfig, train, valid, test=None, species=None) -> Prepared:
    """Prepared data from explicit frame lists (used by ``prepare``, cross-validation, learning curves)."""
    if not valid:
        raise ValueError("no validation frames: set valid_file or a larger valid_fraction")
    train = weighted(config, train)
    pairs = (
        ("validation", "training", train, valid),
        ("test", "training", train, test),
        ("test", "validation", valid, test),
    )
    for name, source_name, source, other in pairs:
        # e.g. a valid_file cut from the train_file, or a strained cell repeated along x, y and z
        if shared := data.symmetric_copies(source, other or []):
            warnings.warn(
                f"{len(shared)} of {len(other)} {name} frames are {source_name} frames or copies of them (rotated, "
                f"reflected or re-indexed: same elements, volume and interatomic distances), so their errors are "
                f"not hold-out errors (first: {shared[0][1]} = {shared[0][0]})",
                stacklevel=2,
            )
    everything = train + valid + (test or [])
    base = _core_below(fine_tune_base(config, everything), train, config.init_from) if config.init_from else None
    species = base.config.species if base else tuple(species) if species else data.species_of_frames(train)
    for name, part in (("validation", valid), ("test", test or [])):
        _refuse_unseen_elements(part, species, name)
    isolated = None
    if config.isolated_atoms_file and base:
        warnings.warn(
            f"isolated_atoms_file {config.isolated_atoms_file} is not used: fine-tuning (init_from) keeps the "
            "reference energies of the model it starts from",
            stacklevel=2,
        )
    elif config.isolated_atoms_file:
        isolated = data.read_frames(config.isolated_atoms_file, config.energy_key, required=("energy",))
    _warn_if_energies_look_per_atom(everything, species, config.energy_key)
    sets = [data.prepare(part, config.cutoff, species) if part else None for part in (train, valid, test)]
    _warn_if_atoms_see_no_neighbours(sets[0], config.cutoff)
    mc = base.config if base else model_config(config, train, species, isolated, data_hyperparameters(config, sets[0]))
    ratio = max(s.edges_per_atom for s in sets if s is not None)
    typical = sets[0].typical_atoms
    # one shape ladder for train, validation and test batches: they share compiled programs
    sets = [s._replace(edges_per_atom=ratio, typical_atoms=typical) if s is not None else None for s in sets]
    return Prepared(sets[0], sets[1], sets[2], mc, base.params if base else None)


def _warn_if_energies_look_per_atom(frames, species, energy_key: str) -> None:
    """Energies per atom read as totals train a model whose energies and forces disagree by a factor
    N and whose errors mean nothing; it runs, so say it (only frames of different sizes can tell)."""
    fits = data.per_atom_energy_fits(frames, species)
    if fits is None:
        return
    as_total, as_per_atom = fits
    if as_total > 1.5 * as_per_atom:  # the true reading wins by 2 or more on mlearn-like data, either way
        files = sorted({f.where.rsplit(", frame", 1)[0] for f in frames if f.energy is not None})
        warnings.warn(
            f"the '{energy_key}' labels of {', '.join(files)} look like energies per atom, not per frame: as "
            f"totals, sum_s n_s e_s fits them to {as_total:.3g} RMS; as energies per atom, sum_s (n_s / N) e_s "
            f"fits them to {as_per_atom:.3g}. mlpot needs each frame's total energy (eV): multiply these by the "
            "frame's number of atoms",
            stacklevel=3,
        )


def _warn_if_atoms_see_no_neighbours(train: data.Dataset, cutoff: float) -> None:
    """A cutoff below the bond lengths (a typo, or nm for Å) trains a model of lone atoms: energies
    from composition alone and zero forces. It runs, so say it."""
    several = [p for p in train.parts if len(p[0]) > 1]
    empty = sum(len(p[2]) == 0 for p in several)
    if several and empty > len(several) // 2:
        warnings.warn(
            f"cutoff {cutoff:g} Å: {empty} of {len(several)} training frames have no atom pair within it, "
            "so the model sees lone atoms only (forces would be zero); is the cutoff in Å?",
            stacklevel=3,
        )


def describe(prepared: Prepared, config: TrainConfig, resumed: ModelConfig | None = None) -> str:
    """Split sizes, reference energies (and where they come from) and the energy scale of the run's model.

    ``resumed``: the checkpoint's model config, whose constants a resume keeps (the data may have
    changed since, and a fit on them would print other numbers than the model uses).
    """
    sizes = [len(s.frames) if s is not None else 0 for s in (prepared.train, prepared.valid, prepared.test)]
    mc = resumed or prepared.model_config
    from ase.data import chemical_symbols

    refs = ", ".join(f"{chemical_symbols[z]} {e:.4f}" for z, e in zip(mc.species, mc.reference_energies))
    if resumed is not None:
        refs += " (the checkpoint's)"
    elif config.init_from:
        refs += f" (init_from {config.init_from}'s)"
    elif config.isolated_atoms_file:
        refs += f" (from {config.isolated_atoms_file})"
    elif np.linalg.matrix_rank(data.composition(prepared.train.frames, mc.species)) < len(mc.species):
        refs += " (few distinct compositions: only their combination is determined, minimum-norm values shown)"
    return (
        f"frames: train {sizes[0]}, valid {sizes[1]}, test {sizes[2]}; reference energies (eV): {refs}; "
        f"energy scale {np.mean(mc.energy_scale):.4f} eV"
    )
