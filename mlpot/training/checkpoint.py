"""Training checkpoints: msgpack (flax.serialization, no pickle), written atomically.

A checkpoint holds everything a killed run needs to continue (exactly, unless ``max_time`` sets the rate):
parameters, optimiser state, EMA parameters and step (``TrainState``), and
the host-side progress (next epoch, learning-rate plateau state, early
stopping counters, metric history, wall time used). The data order needs no
RNG state: epoch ``e`` shuffles with ``default_rng([seed, e])``.
"""

from __future__ import annotations

import json
from pathlib import Path

from flax import serialization

from mlpot.modelfile import atomic_write

MAGIC = b"MLPOTCKPT1\n"


def save_checkpoint(path, state, progress: dict, model_config: dict) -> None:
    payload = {
        "state": serialization.to_state_dict(state),
        # host data as JSON text: msgpack's strict mode rejects tuples, JSON keeps inf/nan
        "progress": json.dumps(progress),
        "model_config": json.dumps(model_config),
    }
    atomic_write(path, MAGIC + serialization.msgpack_serialize(payload))


def _payload(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (nothing to resume)")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path}: not an mlpot checkpoint")
    try:
        return serialization.msgpack_restore(data[len(MAGIC) :])
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: unreadable checkpoint ({err})") from None


def load_checkpoint(path, template_state):
    """(state shaped like ``template_state``, progress dict, model_config dict)."""
    payload = _payload(path)
    try:
        state = serialization.from_state_dict(template_state, payload["state"])
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: checkpoint does not match this run's model/optimiser ({err})") from None
    return state, json.loads(payload["progress"]), json.loads(payload["model_config"])


def checkpoint_model_config(path) -> dict:
    """The model config a checkpoint was written with (its species decide how a resume reads data)."""
    return json.loads(_payload(path)["model_config"])


def checkpoint_progress(path) -> dict:
    """The host-side progress a checkpoint was written with (epoch, best validation loss, history)."""
    return json.loads(_payload(path)["progress"])
