"""A committee: the mean per-atom energy of independently trained models, in the one model slot.

Two models trained apart (different seeds, batch sizes, schedules) make partly independent
errors, so their mean is more accurate than either; forces and stress are the autodiff of that
mean energy like any model's. It costs one force call per member. Members that share a lineage
(fine-tunes of one model) make the same errors and gain almost nothing (BENCHMARKS.md).

A committee is assembled from trained model files with the same species (``mlpot committee OUT A
B ...`` or ``assemble``; cutoffs may differ), never trained: each member keeps its own network,
float policy, energy scale, reference energies and ZBL core, exactly as ``Potential.atom_energy_fn``
composes them, and the committee's own scale and references stay 1 and 0. ``members`` gives the
single models back, e.g. to see how far they disagree on a structure.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:  # mlpot.potential imports this package
    from mlpot.potential import Potential

NAME = "committee"


@dataclass(frozen=True, eq=False)
class Committee:
    """``init``/``apply`` as a flax module has; ``params`` = ``{"member_k": params of member k}``."""

    num_species: int
    cutoff: float
    dtype: str
    members: tuple = ()  # member ModelConfig dicts, in the order of the member_k parameters

    def init(self, rng, vectors, graph):
        raise ValueError("a committee is assembled from trained models (mlpot committee OUT A B ...), not initialised")

    def apply(self, params, vectors, graph):
        from mlpot.potential import ModelConfig, Potential

        energies = [
            Potential(ModelConfig(**member), None).atom_energy_fn()(params[f"member_{k}"], vectors, graph)
            for k, member in enumerate(self.members)
        ]
        return jnp.mean(jnp.stack(energies), axis=0)


def assemble(potentials, names=None) -> Potential:
    """One committee ``Potential`` of two or more single models with the same species.

    ``names`` (the members' files, say) label them in errors and warnings; default "model k".

    Its cutoff is the largest member's: every model in the slot weighs an edge by an envelope that
    is exactly zero from its own cutoff on (``mlpot.radial.polynomial_envelope``), so a member with a
    shorter cutoff gets the same energy from the longer neighbour list."""
    from mlpot.potential import ModelConfig, Potential, same_model

    potentials = list(potentials)
    if len(potentials) < 2:
        raise ValueError(f"a committee needs at least two models, got {len(potentials)}")
    from ase.data import chemical_symbols

    names = list(names) if names is not None else [f"model {k + 1}" for k in range(len(potentials))]
    first = potentials[0].config
    for name, p in zip(names, potentials):
        if p.config.name == NAME:
            raise ValueError(
                f"{name} is already a committee: list its members instead (their files, or in Python "
                "mlpot.models.committee.members(mlpot.load(path)), each with .save(path))"
            )
        if p.config.species != first.species:
            symbols = [" ".join(chemical_symbols[z] for z in c.species) for c in (p.config, first)]
            raise ValueError(
                f"{name} has species {symbols[0]}, {names[0]} has {symbols[1]}: a committee's members "
                "share one species list"
            )
    for k, p in enumerate(potentials):
        for j in range(k):
            if same_model(potentials[j], p):
                warnings.warn(
                    f"{names[j]} and {names[k]} are the same model: a committee gains only from members trained apart",
                    stacklevel=2,
                )
    _warn_about_another_energy_zero(potentials)
    config = ModelConfig(
        name=NAME,
        cutoff=max(p.config.cutoff for p in potentials),
        species=first.species,
        hyperparameters={"members": [p.config.to_dict() for p in potentials]},
        dtype=first.dtype,
    )
    return Potential(config, {f"member_{k}": p.params for k, p in enumerate(potentials)})


# Members fitted to the same kind of labels get reference energies within meV of each other (the same
# least-squares fit, or the same isolated atoms); beyond this they were trained on another energy zero.
REFERENCE_TOLERANCE = 0.1  # eV per atom of one element


def _warn_about_another_energy_zero(potentials) -> None:
    """Members fitted to labels with another energy zero (another DFT code, functional or pseudopotentials)
    average to an energy far from both, and their forces can still agree: the force deviation would not
    show it. Their per-element reference energies do."""
    from ase.data import chemical_symbols

    references = np.array([p.config.reference_energies for p in potentials], np.float64)
    spread = references.max(axis=0) - references.min(axis=0)
    if spread.size and spread.max() > REFERENCE_TOLERANCE:
        worst = int(np.argmax(spread))
        element = chemical_symbols[potentials[0].config.species[worst]]
        warnings.warn(
            f"the members' reference energies for {element} differ by {spread[worst]:.3g} eV: they may have been "
            "trained on labels with another energy zero (another DFT code or settings), which average to an energy "
            "far from each; or fitted apart on data of few compositions (with and without isolated atoms), which "
            "is harmless; compare their energies (mlpot eval COMMITTEE FILE --members)",
            stacklevel=3,
        )


def members(potential: Potential) -> list[Potential]:
    """The single models of a committee ``Potential`` (a single model gives itself)."""
    from mlpot.potential import ModelConfig, Potential

    if potential.config.name != NAME:
        return [potential]
    return [
        Potential(ModelConfig(**member), potential.params[f"member_{k}"])
        for k, member in enumerate(potential.config.hyperparameters["members"])
    ]
