"""Training checkpoints: msgpack (flax.serialization, no pickle), written atomically.

A checkpoint holds everything a killed run needs to continue (exactly, unless ``max_time`` sets the rate):
parameters, optimiser state, EMA parameters and step (``TrainState``), and
the host-side progress (next epoch, learning-rate plateau state, early
stopping counters, metric history, wall time used). The data order needs no
RNG state: epoch ``e`` shuffles with ``default_rng([seed, e])``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import serialization

from mlpot.modelfile import atomic_write

# Format 2: magic, the sha256 of the msgpack body, the body. A flipped bit in a float array would
# otherwise resume silently from corrupt parameters (and the final model file gets a fresh checksum).
MAGIC = b"MLPOTCKPT2\n"
LEGACY_MAGIC = b"MLPOTCKPT1\n"  # no checksum: still read
DIGEST = 32


def save_checkpoint(path, state, progress: dict, model_config: dict) -> None:
    payload = {
        "state": serialization.to_state_dict(state),
        # host data as JSON text: msgpack's strict mode rejects tuples, JSON keeps inf/nan
        "progress": json.dumps(progress),
        "model_config": json.dumps(model_config),
    }
    write_payload(path, payload)


def write_payload(path, payload: dict) -> None:
    """A checkpoint file holding ``payload`` (format 2), written atomically."""
    body = serialization.msgpack_serialize(payload)
    atomic_write(path, MAGIC + hashlib.sha256(body).digest() + body)


def read_payload(path) -> dict:
    """The checked payload of a checkpoint file (format 2, or format 1 without a checksum)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path} (nothing to resume)")
    data = path.read_bytes()
    if data.startswith(MAGIC):
        digest, body = data[len(MAGIC) : len(MAGIC) + DIGEST], data[len(MAGIC) + DIGEST :]
        if hashlib.sha256(body).digest() != digest:
            raise ValueError(
                f"{path}: corrupt or truncated checkpoint (checksum mismatch); resume is not possible from it: "
                "start over, or fine-tune the run's model.mlpot (init_from)"
            )
    elif data.startswith(LEGACY_MAGIC):
        body = data[len(LEGACY_MAGIC) :]
    else:
        raise ValueError(f"{path}: not an mlpot checkpoint")
    try:
        return serialization.msgpack_restore(body)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: unreadable checkpoint ({err})") from None


def load_checkpoint(path, template_state):
    """(state shaped like ``template_state``, progress dict, model_config dict)."""
    payload = read_payload(path)
    try:
        state = serialization.from_state_dict(template_state, payload["state"])
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"{path}: checkpoint does not match this run's model/optimiser ({err})") from None
    # msgpack gives numpy arrays: a jitted step would compile once for them and again for the jax
    # arrays it returns
    state = jax.tree_util.tree_map(jnp.asarray, state)
    return state, json.loads(payload["progress"]), json.loads(payload["model_config"])


def checkpoint_model_config(path) -> dict:
    """The model config a checkpoint was written with (its species decide how a resume reads data)."""
    return json.loads(read_payload(path)["model_config"])


def checkpoint_progress(path) -> dict:
    """The host-side progress a checkpoint was written with (epoch, best validation loss, history)."""
    return json.loads(read_payload(path)["progress"])
