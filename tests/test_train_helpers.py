"""Shared helpers for the training tests (no tests here): a tiny learnable model and synthetic frames.

``TinyPair`` is a per-species pair potential on a Bessel basis: a real
learnable model in the model slot that compiles in a second, so loop-level
tests (resume, compile counts, masks) stay fast. It is registered under a
test-only name, which also checks that training special-cases no model name.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

import mlpot  # noqa: F401  (x64)
from mlpot.models import MODELS
from mlpot.radial import bessel_basis, polynomial_envelope, safe_norm


class TinyPair(nn.Module):
    num_species: int
    cutoff: float
    num_basis: int = 4
    avg_num_neighbors: float = 1.0  # filled in from the data by training when not set
    dtype: str = "float32"

    @nn.compact
    def __call__(self, vectors, graph):
        distances = safe_norm(vectors.astype(self.dtype))
        envelope = polynomial_envelope(distances, self.cutoff) * graph.edge_mask
        radial = bessel_basis(distances, self.cutoff, self.num_basis) * envelope[:, None]
        weights = nn.Embed(self.num_species, self.num_basis)(graph.species[graph.senders])
        pair = jnp.sum(radial * weights, axis=-1) / self.avg_num_neighbors
        onsite = nn.Embed(self.num_species, 1)(graph.species)[:, 0]
        n = graph.species.shape[0]
        return (jax.ops.segment_sum(pair, graph.receivers, num_segments=n) + onsite) * graph.node_mask


TINY = "test_tiny_pair"


def register_tiny() -> str:
    """The test model's name; it must be in MODELS (see ``tiny_model``) while it is used."""
    return TINY


def tiny_model(monkeypatch) -> str:
    """Put TinyPair into MODELS for one test (monkeypatch removes it afterwards)."""
    monkeypatch.setitem(MODELS, TINY, TinyPair)
    return TINY


def labelled(atoms: Atoms, seed: int, stress: bool = False) -> Atoms:
    """Atoms with smooth synthetic labels (a harmonic-ish toy: E = sum_pairs exp(-r), F by finite form)."""
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.rattle(0.05, seed=seed)
    energy = -3.0 * len(atoms) + rng.normal(0, 0.05)
    forces = rng.normal(0, 0.5, (len(atoms), 3))
    results = {"energy": energy, "forces": forces}
    if stress:
        results["stress"] = rng.normal(0, 0.01, 6)
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def molecules(n: int, seed: int = 0, names=("H2O", "CH4", "CH3OH", "C2H6", "NH3")) -> list[Atoms]:
    return [labelled(molecule(names[k % len(names)]), seed + k) for k in range(n)]


def crystals(n: int, seed: int = 0, sizes=(1, 2)) -> list[Atoms]:
    return [
        labelled(bulk("Si", "diamond", 5.43) * (1, 1, sizes[k % len(sizes)]), seed + k, stress=True) for k in range(n)
    ]


def test_time_budget_ignores_the_compiling_first_epoch():
    """A first epoch slowed by compilation must not end a run whose budget has room for more."""
    from mlpot.training.config import TrainConfig
    from mlpot.training.run import next_epoch_estimate
    from mlpot.training.trainer import time_left

    config = TrainConfig(train_file="x.xyz", max_time=10)  # 600 s
    first_epoch = 400.0  # mostly compilation
    assert time_left(config, first_epoch, next_epoch_estimate(first_epoch, 1))
    steady = 150.0
    assert not time_left(config, first_epoch + 2 * steady, next_epoch_estimate(steady, 3))
    assert time_left(config, first_epoch + steady, next_epoch_estimate(30.0, 2))
