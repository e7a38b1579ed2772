"""``Potential``: a model, its parameters and everything needed to use it.

Float policy (``ModelConfig.dtype``): the network runs in ``"float32"``
(default; fast) or ``"float64"``. Positions, the strain, reference energies,
per-atom energy sums, forces and stress are float64 in both cases: mlpot
enables ``jax_enable_x64`` on import so these can be. Reference energies are
added after the network, in float64, because absolute DFT energies
(~ -30000 eV) have no significant digits left in float32.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from mlpot import physics, repulsion
from mlpot.graph import Graph, build_graph
from mlpot.models import MODELS

# 2: PaiNN applies the cutoff envelope after the radial filter's bias (in 1 a
# trained bias let edges at and beyond the cutoff contribute: 1's PaiNN files are refused).
FORMAT_VERSION = 2


@dataclass(frozen=True)
class ModelConfig:
    """Everything but the parameters. Stored in the model file as JSON-able data."""

    name: str  # key of mlpot.models.MODELS
    cutoff: float  # Å
    species: tuple[int, ...]  # atomic numbers, in the order of the species index
    hyperparameters: dict = field(default_factory=dict)  # passed to the model's constructor
    reference_energies: tuple[float, ...] = ()  # eV per atom of each species (float64)
    energy_scale: tuple[float, ...] = ()  # eV, network output x scale, per species
    dtype: str = "float32"  # network float policy: "float32" or "float64"
    # ZBL core inside these radii (S x S, Å, by species index; see mlpot.repulsion); () = none
    repulsion_radii: tuple = ()

    def __post_init__(self):
        if self.name not in MODELS:
            raise ValueError(f"unknown model {self.name!r}; choose from {sorted(MODELS)}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', not {self.dtype!r}")
        cutoff = float(self.cutoff)  # a numpy scalar would not go into the model file's JSON
        if not (math.isfinite(cutoff) and cutoff > 0):
            raise ValueError(f"cutoff must be a positive number of Å, not {self.cutoff!r}")
        object.__setattr__(self, "cutoff", cutoff)
        reserved = {"num_species", "cutoff", "dtype"} & set(self.hyperparameters)
        if reserved:  # the config's own fields, given to the model by make_module
            raise ValueError(
                f"hyperparameters {sorted(reserved)}: set these as ModelConfig fields, not hyperparameters"
            )
        n = len(self.species)
        object.__setattr__(self, "species", tuple(int(z) for z in self.species))
        object.__setattr__(self, "reference_energies", tuple(float(e) for e in self.reference_energies) or (0.0,) * n)
        object.__setattr__(self, "energy_scale", tuple(float(e) for e in self.energy_scale) or (1.0,) * n)
        if len(self.reference_energies) != n or len(self.energy_scale) != n:
            raise ValueError("reference_energies and energy_scale need one value per species")
        radii = tuple(tuple(float(r) for r in row) for row in self.repulsion_radii)
        if radii and (len(radii) != n or any(len(row) != n for row in radii)):
            raise ValueError(f"repulsion_radii must be {n} x {n} (one per species pair) or empty")
        if radii and any(r < 0 or r != radii[q][p] for p, row in enumerate(radii) for q, r in enumerate(row)):
            # a pair's core must not depend on which atom receives the edge
            raise ValueError(f"repulsion_radii must be symmetric and >= 0 (Å, one per species pair), got {radii}")
        if radii and max(max(row) for row in radii) > self.cutoff:
            raise ValueError(  # the core acts on listed edges only: past the cutoff it would end in a step
                f"repulsion_radii reach {max(max(row) for row in radii)} Å, beyond the cutoff {self.cutoff} Å"
            )
        object.__setattr__(self, "repulsion_radii", radii)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """The config as the model file stores it (JSON), for comparisons and cache keys: a committee's
        member configs keep tuples in memory and lists once loaded, and must compare equal."""
        return json.dumps(self.to_dict(), sort_keys=True, default=repr)  # repr: a numpy scalar set in memory

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)


def make_module(config: ModelConfig):
    return MODELS[config.name](
        num_species=len(config.species), cutoff=config.cutoff, dtype=config.dtype, **config.hyperparameters
    )


@dataclass(frozen=True)
class Potential:
    """An immutable (config, params) pair with jitted predictions."""

    config: ModelConfig
    params: dict

    @classmethod
    def create(cls, config: ModelConfig, seed: int = 0) -> Potential:
        """Randomly initialised parameters for ``config``."""
        from ase import Atoms

        z = config.species[0]
        dummy = build_graph(Atoms([z, z], positions=[[0, 0, 0], [0, 0, 1.0]]), config.cutoff, config.species)
        vectors = physics.edge_vectors(dummy.positions, dummy.cell, dummy)
        # jit: one compile of the whole init instead of one per eager op (MACE: 35 s -> 14 s on CPU)
        params = jax.jit(make_module(config).init)(jax.random.PRNGKey(seed), vectors, dummy)
        return cls(config, params)

    @property
    def cutoff(self) -> float:
        return self.config.cutoff

    def atom_energy_fn(self):
        """``(params, vectors, graph) -> (N,)`` eV per atom: network x scale + reference, float64."""
        module = make_module(self.config)
        scale = jnp.asarray(self.config.energy_scale, jnp.float64)
        reference = jnp.asarray(self.config.reference_energies, jnp.float64)
        # Parameters stored in another precision (float32 weights run under a float64 config) would keep
        # layers that read them directly (the species embedding) in theirs. A committee's members cast
        # their own, each to its dtype.
        network = None if self.config.name == "committee" else jnp.dtype(self.config.dtype)

        def atom_energies(params, vectors, graph):
            if network is not None:
                params = jax.tree_util.tree_map(lambda x: _as_float(x, network), params)
            out = module.apply(params, vectors, graph).astype(jnp.float64)
            return out * scale[graph.species] + reference[graph.species]

        if not self.config.repulsion_radii:
            return atom_energies
        numbers = jnp.asarray(self.config.species, jnp.float64)
        radii = jnp.asarray(self.config.repulsion_radii, jnp.float64)

        def with_core(params, vectors, graph):
            return atom_energies(params, vectors, graph) + repulsion.atom_energies(vectors, graph, numbers, radii)

        return with_core

    def predict_fn(self, compute_stress: bool = True):
        """A jitted ``(params, graph) -> Predictions``; reuse it to avoid recompiles."""
        return jax.jit(partial(physics.predict, self.atom_energy_fn(), compute_stress=compute_stress))

    def graph(self, structures, num_nodes=None, num_edges=None, num_graphs=None, skin: float = 0.0) -> Graph:
        return build_graph(structures, self.cutoff + skin, self.config.species, num_nodes, num_edges, num_graphs)

    def predict(self, structures) -> physics.Predictions:
        """Predictions for ASE Atoms (one or a list), as padded arrays: structure k is ``energy[k]``
        (and ``stress[k]``); atoms come first in input order, so the forces of a single structure
        are ``forces[:len(atoms)]``. Trailing entries are padding. ``mlpot.Calculator`` gives the
        unpadded ASE view."""
        require_x64("Potential.predict")
        return _cached_predict(self)(self.params, self.graph(structures))

    def with_dtype(self, dtype: str) -> Potential:
        """The same model with its network in ``dtype`` ("float32" or "float64"); a committee's members
        each. Positions, energy sums, forces and stress are float64 either way."""
        from mlpot.models.committee import assemble, members

        if self.config.name == "committee":
            return assemble([member.with_dtype(dtype) for member in members(self)])
        # device arrays, as a loaded model's: numpy parameters compile a program of their own
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(_as_float(np.asarray(x), np.dtype(dtype))), self.params)
        return Potential(self.config.replace(dtype=dtype), params)

    def replace_params(self, params) -> Potential:
        return dataclasses.replace(self, params=params)

    def save(self, path) -> None:
        from mlpot.modelfile import save

        save(self, path)

    def __hash__(self):  # identity: params are not hashable
        return id(self)

    def __eq__(self, other):
        return self is other


def _as_float(x, dtype):
    """A floating parameter array (numpy, jax or a tracer) in ``dtype``; others (none today) as they are."""
    return x.astype(dtype) if np.issubdtype(x.dtype, np.floating) else x


def same_model(a: Potential, b: Potential) -> bool:
    """Whether two potentials compute the same thing: equal configs and bitwise-equal parameters
    (two loads of one file are the same model; ``==`` on ``Potential`` is identity)."""
    if a is b:
        return True
    if a.config.key() != b.config.key():
        return False
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)
    return len(leaves_a) == len(leaves_b) and all(
        np.shape(x) == np.shape(y) and np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(x, y)
        for x, y in zip(leaves_a, leaves_b)
    )


_PREDICT_CACHE: dict = {}  # insertion order = least recently used first
PREDICT_CACHE_SIZE = 16


def require_x64(who: str) -> None:
    """Refuse to run with ``jax_enable_x64`` off: importing mlpot turns it on, but a user or another
    library can turn it off later, and positions, energy sums, forces, stress and MD state would then
    silently be float32 (0.7 meV off on a 192-atom water box, more with size)."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            f"{who}: jax_enable_x64 was switched off after importing mlpot; mlpot's float policy needs it "
            "(float64 positions, energy sums and MD state): jax.config.update('jax_enable_x64', True)"
        )


def shared_predict_fn(potential: Potential, compute_stress: bool = True):
    """``potential.predict_fn(compute_stress)``, one per model config and variant for the process.

    Parameters are an argument, so every Calculator (and ``Potential.predict``) of the same
    model reuses the programs already compiled: a new Calculator per structure used to
    recompile (2.4 s per ethanol frame instead of 2 ms).
    """
    key = (potential.config.key(), compute_stress)
    if key in _PREDICT_CACHE:
        _PREDICT_CACHE[key] = _PREDICT_CACHE.pop(key)  # most recently used last
    else:
        if len(_PREDICT_CACHE) >= PREDICT_CACHE_SIZE:  # e.g. an active-learning loop's many models
            _PREDICT_CACHE.pop(next(iter(_PREDICT_CACHE)))
        _PREDICT_CACHE[key] = potential.predict_fn(compute_stress)
    return _PREDICT_CACHE[key]


def _cached_predict(potential: Potential):
    return shared_predict_fn(potential, True)


def load(path) -> Potential:
    from mlpot.modelfile import load as _load

    return _load(path)
