"""Optimiser and learning rate.

The optax chain holds everything but the learning rate: clip -> Adam/AMSGrad
moments -> (AdamW) decoupled weight decay. The learning rate is computed on
the host for every step (warm-up, then cosine decay or a factor that the
host lowers on a validation plateau) and passed to the jitted step as a
scalar argument, so schedules and plateaus never recompile and the whole
schedule state is a few Python numbers that a checkpoint can store.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mlpot.training.config import TrainConfig


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Gradient -> update direction (to be scaled by -learning_rate)."""
    parts = []
    if config.clip_grad_norm:
        parts.append(optax.clip_by_global_norm(config.clip_grad_norm))
    parts.append(optax.scale_by_amsgrad() if config.amsgrad else optax.scale_by_adam())
    if config.optimizer == "adamw" and config.weight_decay > 0:
        parts.append(optax.add_decayed_weights(config.weight_decay))
    return optax.chain(*parts)


class PlateauState(NamedTuple):
    factor: float  # current multiplier of learning_rate
    best: float  # best validation loss seen
    bad_epochs: int  # epochs since it improved


def learning_rate(
    config: TrainConfig, step: int, steps_per_epoch: int, plateau: PlateauState, time_fraction: float = 0.0
) -> float:
    """lr at optimiser ``step``: linear warm-up, then cosine to min_lr_ratio, plateau factor, or constant.

    The cosine follows whichever budget runs out first: steps of ``epochs``, or
    ``time_fraction`` (wall time used / ``max_time``), so a time-limited run
    still ends annealed.
    """
    warmup = max(1, int(config.warmup_epochs * steps_per_epoch))
    base = config.learning_rate
    if step < warmup and config.warmup_epochs > 0:
        return base * (step + 1) / warmup
    if config.lr_schedule == "cosine":
        total = max(1, config.epochs * steps_per_epoch - warmup)
        progress = min(1.0, max((step - warmup) / total, time_fraction))
        floor = config.min_lr_ratio
        return base * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))
    if config.lr_schedule == "plateau":
        return base * plateau.factor
    return base


def update_plateau(config: TrainConfig, plateau: PlateauState, valid_loss: float) -> PlateauState:
    """Reduce-on-plateau bookkeeping after each validation (host side)."""
    if valid_loss < plateau.best * (1 - 1e-4):
        return PlateauState(plateau.factor, valid_loss, 0)
    if plateau.bad_epochs + 1 >= config.plateau_patience:
        factor = max(config.min_lr_ratio, plateau.factor * config.plateau_factor)
        return PlateauState(factor, plateau.best, 0)
    return PlateauState(plateau.factor, plateau.best, plateau.bad_epochs + 1)


def ema_update(ema, params, decay, step):
    """EMA with a warm-up of the decay (early averages are not dominated by the random init)."""
    decay = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
    return jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
