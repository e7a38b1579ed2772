"""The training loop: one jitted train step, a plain Python loop around it.

Per epoch: shuffle (seeded by (seed, epoch), so a resumed run sees the same
order), pad into bucketed batches, step, validate with the EMA parameters,
log, checkpoint (last every epoch, best when validation improves), and stop
on the epoch budget, the time budget or early stopping.

Validation loss = w_E * RMSE(E/atom)^2 + w_F * RMSE(F)^2 + w_S * RMSE(σ)^2 over
the whole validation set (the MSE loss evaluated exactly, independent of
batching), with the weights in force at that epoch.
"""

from __future__ import annotations

import time
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mlpot import data, physics
from mlpot.potential import Potential
from mlpot.training import metrics as metrics_mod
from mlpot.training.config import TrainConfig, weight_stages
from mlpot.training.loss import LossWeights, loss_terms, penalty, total_loss
from mlpot.training.optim import PlateauState, ema_update, learning_rate


class TrainState(NamedTuple):
    params: dict
    opt_state: tuple
    ema: dict  # EMA of params (== params when EMA is off); used for validation and saving
    step: jnp.ndarray  # () int, optimiser steps taken


class StepStats(NamedTuple):
    loss: jnp.ndarray
    energy: jnp.ndarray  # loss terms, unweighted
    forces: jnp.ndarray
    stress: jnp.ndarray


def init_state(potential: Potential, optimizer) -> TrainState:
    params = potential.params
    return TrainState(params, optimizer.init(params), params, jnp.zeros((), jnp.int32))


_CACHE: dict = {}  # jitted functions of recent runs: runs with equal settings (CV folds, resumes) reuse compiles


def _cached(key, build):
    if key not in _CACHE:
        if len(_CACHE) >= 8:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = build()
    return _CACHE[key]


def jitted_predict(potential: Potential, compute_stress: bool):
    """Jitted ``(params, graph) -> Predictions``, shared by runs with the same model config."""
    key = ("predict", potential.config.key(), compute_stress)
    return _cached(
        key, lambda: jax.jit(partial(physics.predict, potential.atom_energy_fn(), compute_stress=compute_stress))
    )


def make_train_step(potential: Potential, optimizer, config: TrainConfig, compute_stress: bool):
    """Jitted ``(state, graph, labels, weights, lr) -> (state, StepStats)`` (cached by every setting it bakes in)."""
    baked = (
        config.loss,
        config.huber_delta,
        config.ema_decay,
        config.clip_grad_norm,
        config.amsgrad,
        config.optimizer,
        config.weight_decay,
    )
    key = ("step", potential.config.key(), compute_stress, baked)
    return _cached(key, lambda: _make_train_step(potential, optimizer, config, compute_stress))


def _make_train_step(potential: Potential, optimizer, config: TrainConfig, compute_stress: bool):
    atom_energy_fn = potential.atom_energy_fn()

    def loss_fn(params, graph, labels, weights):
        pred = physics.predict(atom_energy_fn, params, graph, compute_stress)
        terms = loss_terms(pred, labels, graph, config.loss, config.huber_delta)
        return total_loss(terms, weights), terms

    def step(state: TrainState, graph, labels, weights, lr):
        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, graph, labels, weights)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        updates = jax.tree_util.tree_map(lambda u: u * jnp.asarray(-lr, u.dtype), updates)
        params = optax.apply_updates(state.params, updates)
        ema = ema_update(state.ema, params, config.ema_decay, state.step) if config.ema_decay else params
        return TrainState(params, opt_state, ema, state.step + 1), StepStats(loss, *terms)

    return jax.jit(step)


def weights_at(config: TrainConfig, epoch: int) -> LossWeights:
    """Loss weights in force at ``epoch`` (0-based): the base ones, updated by each schedule entry reached."""
    values = [weights for start, weights in weight_stages(config) if epoch >= start][-1]
    return LossWeights(np.float64(values["energy"]), np.float64(values["forces"]), np.float64(values["stress"]))


def evaluate(
    potential: Potential, dataset: data.Dataset, batch_size: int, predict_fn=None, compute_stress: bool | None = None
) -> tuple[dict, list]:
    """(metrics dict, collected pairs) of ``potential`` on every frame of ``dataset``."""
    if compute_stress is None:
        compute_stress = data.has_stress(dataset.frames)
    predict = predict_fn or jitted_predict(potential, compute_stress)
    collected = []
    for graph, labels in data.batches(dataset, batch_size):
        pred = predict(potential.params, graph)
        collected.append(metrics_mod.collect(pred, labels, graph, potential.config.species))
    return metrics_mod.summarise(collected), collected


def validation_loss(collected: list[dict], weights: LossWeights, kind: str = "mse", delta: float = 0.01) -> float:
    """The training loss (same kind, weights and per-atom energies) over every validation frame.

    For ``mse`` this is w_E RMSE_E/atom^2 + w_F RMSE_F^2 + w_S RMSE_sigma^2; for ``huber`` the best model
    is chosen by the Huber loss it was trained on, not by RMSEs that weigh the outliers it discounts."""
    pairs = metrics_mod.concatenate(collected)
    (e_pred, e_ref), n_atoms = pairs["energy"], np.maximum(pairs["n_atoms"], 1)
    errors = (
        (weights.energy, (e_pred - e_ref) / n_atoms),
        (weights.forces, np.subtract(*pairs["forces"])),
        (weights.stress, np.subtract(*pairs["stress"])),
    )
    return float(sum(float(w) * jnp.mean(penalty(jnp.asarray(e), kind, delta)) for w, e in errors if e.size))


class Loop(NamedTuple):
    """The pieces of a run that never change during it."""

    config: TrainConfig
    potential: Potential  # config + initial params
    train: data.Dataset
    valid: data.Dataset
    step_fn: object  # jitted train step
    predict_fn: object  # jitted predict for validation


def run_epoch(loop: Loop, state: TrainState, epoch: int, plateau: PlateauState, bar=None, elapsed: float = 0.0):
    """One pass over the shuffled training set; returns (state, mean StepStats dict).

    ``elapsed``: wall seconds used before this epoch (for a time-driven learning-rate schedule).
    """
    config = loop.config
    start = time.perf_counter()
    budget = config.max_time * 60.0 if config.max_time else None
    order = np.random.default_rng([config.seed, epoch]).permutation(len(loop.train.frames))
    steps_per_epoch = -(-len(order) // config.batch_size)
    weights = weights_at(config, epoch)
    # The schedule runs on epochs, not on the optimiser's step count: a resume with another batch_size
    # or training set has another number of steps per epoch, and the count would put it elsewhere.
    step, stats = epoch * steps_per_epoch, []
    for k in range(0, len(order), config.batch_size):
        # host work (padding the next batch) overlaps the device step: no sync inside this loop
        graph, labels = data.collate(loop.train, order[k : k + config.batch_size], config.batch_size)
        used = (elapsed + time.perf_counter() - start) / budget if budget else 0.0
        lr = learning_rate(config, step, steps_per_epoch, plateau, used)
        state, batch_stats = loop.step_fn(state, graph, labels, weights, np.float64(lr))
        stats.append(batch_stats)
        step += 1
        if bar is not None:
            bar.update(1)
    means = np.mean(np.asarray(jax.device_get(stats), dtype=np.float64), axis=0)  # one transfer, not 4 per step
    return state, {
        "train_loss": means[0],
        "train_energy_term": means[1],
        "train_forces_term": means[2],
        "train_stress_term": means[3],
        "lr": lr,
    }


def validate(loop: Loop, state: TrainState, epoch: int) -> dict:
    potential = loop.potential.replace_params(state.ema)
    metrics, collected = evaluate(potential, loop.valid, loop.config.batch_size, loop.predict_fn)
    config = loop.config
    out = {"valid_loss": validation_loss(collected, weights_at(config, epoch), config.loss, config.huber_delta)}
    out.update({f"valid_{k}": v for k, v in metrics.items() if k != "n_frames"})
    return out


def time_left(config: TrainConfig, elapsed: float, epoch_seconds: float) -> bool:
    """True if another epoch fits in ``max_time`` (minutes)."""
    return config.max_time is None or elapsed + epoch_seconds <= config.max_time * 60.0


def postfix(row: dict) -> dict:
    shown = {"loss": f"{row['train_loss']:.3g}", "val": f"{row['valid_loss']:.3g}"}
    if "valid_energy_mae_per_atom" in row:
        shown["E/at"] = f"{row['valid_energy_mae_per_atom'] * 1e3:.2f}meV"
    if "valid_forces_mae" in row:
        shown["F"] = f"{row['valid_forces_mae'] * 1e3:.1f}meV/Å"
    return shown
