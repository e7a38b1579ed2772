"""The training loss: a pure function of predictions, labels and weights.

  L = w_E * mean_g[(ΔE_g / N_g)^2] + w_F * mean_{i,a}[ΔF_ia^2] + w_S * mean_{g,a,b}[Δσ_gab^2]

Each mean runs only over labelled, real entries (padding and frames without
that label are masked out); an empty mean is 0. With frame weights
(``config_type_weights``, scaled by ``prepare.weighted`` to mean 1 over the
training frames) each entry counts its frame's weight and the mean still
divides by the number of entries: a frame weighs against the whole data set,
not against the frames it shares a batch with (dividing by the batch's summed
weight made a lone Surface frame weigh what a bulk one does at batch size 1).
Weighting every frame alike changes nothing. With ``kind="huber"`` the
square x^2 is replaced by 2 * huber(x, delta) (= x^2 for |x| <= delta, linear
beyond), so both kinds agree on small errors.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import optax

from mlpot.data import Labels
from mlpot.graph import Graph
from mlpot.physics import Predictions


class LossWeights(NamedTuple):
    energy: float  # per (eV/atom)^2
    forces: float  # per (eV/Å)^2
    stress: float  # per (eV/Å^3)^2


class LossTerms(NamedTuple):
    energy: jnp.ndarray  # () mean squared (or Huber) per-atom energy error
    forces: jnp.ndarray  # () mean over force components
    stress: jnp.ndarray  # () mean over stress components of frames with stress


def penalty(error, kind: str, delta: float):
    """Per-component penalty shared by training and model selection.

    Huber is doubled so that it equals the squared error for |error| <= delta: the two kinds
    then agree on small errors and one set of loss weights serves both.
    """
    if kind == "mse":
        return error**2
    if kind == "huber":
        return 2.0 * optax.losses.huber_loss(error, delta=delta)
    raise ValueError(f"unknown loss {kind!r}; choose 'mse' or 'huber'")


def _masked_mean(values, mask, weight):
    mask = jnp.broadcast_to(mask, values.shape)
    weighted = jnp.where(mask, values * jnp.broadcast_to(weight, values.shape), 0.0)
    return jnp.sum(weighted) / jnp.maximum(jnp.sum(mask), 1)


def loss_terms(pred: Predictions, labels: Labels, graph: Graph, kind: str = "mse", delta: float = 0.01) -> LossTerms:
    n_atoms = jnp.maximum(graph.n_node, 1)
    weight = jnp.ones_like(labels.energy) if labels.weight is None else labels.weight
    energy_mask = labels.energy_mask & graph.graph_mask
    energy = _masked_mean(penalty((pred.energy - labels.energy) / n_atoms, kind, delta), energy_mask, weight)
    forces_mask = (labels.forces_mask[graph.node_graph] & graph.node_mask)[:, None]
    forces = _masked_mean(
        penalty(pred.forces - labels.forces, kind, delta), forces_mask, weight[graph.node_graph, None]
    )
    stress_mask = (labels.stress_mask & graph.graph_mask)[:, None, None]
    stress = _masked_mean(penalty(pred.stress - labels.stress, kind, delta), stress_mask, weight[:, None, None])
    return LossTerms(energy, forces, stress)


def total_loss(terms: LossTerms, weights: LossWeights):
    return weights.energy * terms.energy + weights.forces * terms.forces + weights.stress * terms.stress
