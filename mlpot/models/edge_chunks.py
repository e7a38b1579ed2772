"""Neighbour sums over chunks of edges, for graphs too large to keep every edge's activations.

The force is the gradient of the energy, so its backward pass keeps what the forward pass
computed on every edge: messages, gathered sender features, radial-filter layers. For a large MD
system that is most of the memory (one 32-channel MACE force call on 12,288 water atoms peaked at
7.4 GiB). Above ``CHUNKED_ABOVE`` message numbers (edges x a model's numbers per edge), the sum
runs over chunks of edges in a ``lax.scan`` whose body is under ``jax.checkpoint``: one chunk's
activations exist at a time, recomputed in the backward pass. Measured (one core, one call,
benchmarks/force_call_memory.py): that MACE call 7.4 -> 2.0 GiB at the same speed; the 128-channel
l <= 3 MACE on 1,536 atoms 8.3 -> 2.8 GiB; the shipped water PaiNN (64 features) on 12,288 atoms
13.2 -> 1.3 GiB and 29.4 -> 6.2 s (the one-pass call had outgrown the caches). Every training
recipe's batches stay far below the threshold (the largest, the wide ethanol MACE's batch of 16,
holds 2.4M numbers) and keep the one-pass sum, so training pays no recomputation.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp


def _threshold(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"MLPOT_EDGE_CHUNKS_ABOVE={value!r}: give a number of message numbers, or inf") from None


# Where memory is not yet the limit the recomputation costs time (32-channel MACE call, chunks
# forced: +35 % on 1,536 water atoms, +10 % on 5,184, nothing on 12,288; a training step 2.7x), so
# the chunks start where the one-pass sum holds several GiB. MLPOT_EDGE_CHUNKS_ABOVE overrides it
# ("inf": never, "0": always).
CHUNKED_ABOVE = _threshold(os.environ.get("MLPOT_EDGE_CHUNKS_ABOVE", str(2**26)))
CHUNK_NUMBERS = 2**24  # message numbers per chunk: edges per chunk = this / numbers per edge


def edge_chunk(num_edges: int, numbers_per_edge: int) -> int | None:
    """Edges per chunk for a graph of ``num_edges`` (static), or None for the one-pass sum."""
    if num_edges * numbers_per_edge <= CHUNKED_ABOVE:
        return None
    return max(64, 1 << int(math.log2(max(1, CHUNK_NUMBERS // numbers_per_edge))))


def chunked_segment_sums(per_edge: Callable, edge_arrays: Sequence, receivers, starts: Sequence, chunk: int) -> list:
    """``[start_k + segment_sum(out_k, receivers)]`` for ``out = per_edge(*edge_arrays)``, summed
    ``chunk`` edges at a time.

    ``per_edge``: edge arrays of one chunk -> a list of per-edge arrays (E_chunk, ...), one per
    entry of ``starts`` (node arrays (N, ...) the sums are added to). It may close over node arrays
    and parameters (gradients flow to them). The edges that fill up the last chunk are zeros with
    receiver 0: ``per_edge`` must give them zero outputs (a zero envelope does).
    """
    num_edges, num_nodes = receivers.shape[0], starts[0].shape[0]
    count = -(-num_edges // chunk)

    def chunks(x):
        x = jnp.pad(x, [(0, count * chunk - num_edges)] + [(0, 0)] * (x.ndim - 1))
        return x.reshape(count, chunk, *x.shape[1:])

    @jax.checkpoint
    def add_chunk(summed, edges):
        *arrays, rcv = edges
        outs = per_edge(*arrays)
        return [s + jax.ops.segment_sum(o, rcv, num_segments=num_nodes) for s, o in zip(summed, outs)], None

    edges = tuple(chunks(x) for x in (*edge_arrays, receivers))
    return jax.lax.scan(add_chunk, list(starts), edges)[0]
