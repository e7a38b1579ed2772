"""Neighbour sums over chunks of edges (large graphs) give the one-pass sum's numbers: PaiNN here,
MACE in test_mace.py (its own fixtures)."""

import os
import subprocess
import sys
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import small_painn, triclinic_si

from mlpot.models import edge_chunks
from mlpot.physics import predict


def test_chunk_sizes():
    assert edge_chunks.edge_chunk(1000, 288) is None  # a training batch: one pass
    assert edge_chunks.edge_chunk(640_000, 288) == 32768  # 12,288 water atoms, 32-channel MACE: 20 chunks
    assert edge_chunks.edge_chunk(80_000, 128 * 16) == 8192  # the wide MACE on 1,536 atoms
    assert edge_chunks.edge_chunk(10**9, 10**6) == 64  # never below 64 edges


def test_painn_chunked_equals_one_pass(monkeypatch):
    """Energies, forces, stress and the second-order training gradient, with a part-padding last chunk."""
    potential = small_painn((14,), cutoff=4.0)
    atoms = triclinic_si((2, 2, 1))
    real_edges = int(np.sum(potential.graph(atoms).edge_mask))
    graph = potential.graph(atoms, num_nodes=20, num_edges=real_edges + 37, num_graphs=2)

    def outputs():  # a fresh trace, so the patched constants decide the branch
        energy_fn = potential.atom_energy_fn()

        def force_loss(params):
            return jnp.sum(predict(energy_fn, params, graph, compute_stress=False).forces ** 2)

        run = jax.jit(partial(predict, energy_fn, compute_stress=True))
        return run(potential.params, graph), jax.jit(jax.grad(force_loss))(potential.params)

    one_pass, one_pass_grad = outputs()
    width = 4 * 16  # the small PaiNN's 16 features
    monkeypatch.setattr(edge_chunks, "CHUNKED_ABOVE", 0)
    monkeypatch.setattr(edge_chunks, "CHUNK_NUMBERS", 64 * width)
    assert edge_chunks.edge_chunk(graph.num_edges, width) == 64 and graph.num_edges % 64 and real_edges > 64
    chunked, chunked_grad = outputs()
    assert float(chunked.energy[0]) == pytest.approx(float(one_pass.energy[0]), rel=1e-13)
    np.testing.assert_allclose(chunked.forces, one_pass.forces, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(chunked.stress, one_pass.stress, rtol=1e-10, atol=1e-12)
    assert np.abs(one_pass.forces).max() > 1e-2
    for a, b in zip(jax.tree_util.tree_leaves(chunked_grad), jax.tree_util.tree_leaves(one_pass_grad)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# Each size is one the default threshold (2^26 message numbers) treats the other way, so a knob that
# is not read fails: 10^12 numbers chunk by default, 10^7 do not.
@pytest.mark.parametrize(
    ("value", "size", "expected"),
    [("inf", "10**6, 10**6", "None"), ("1000", "10**4, 10**3", str(2**14)), ("0", "10, 10", str(2**20))],
)
def test_threshold_from_the_environment(value, size, expected):
    code = f"from mlpot.models import edge_chunks as e; print(e.edge_chunk({size}))"
    assert _python(code, None).stdout.strip() != expected  # the default decides otherwise
    assert _python(code, value).stdout.strip() == expected


def test_threshold_from_the_environment_refuses_a_word():
    done = _python("from mlpot.models import edge_chunks", "lots", check=False)
    assert done.returncode != 0 and "MLPOT_EDGE_CHUNKS_ABOVE='lots': give a number" in done.stderr


def _python(code: str, threshold: str | None, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLPOT_EDGE_CHUNKS_ABOVE"}
    if threshold is not None:
        env["MLPOT_EDGE_CHUNKS_ABOVE"] = threshold
    return subprocess.run(
        [sys.executable, "-c", code], check=check, env=env, capture_output=True, text=True, timeout=120
    )
