"""The MACE model: E(3) equivariance, invariances, autodiff physics, cutoff smoothness, model file, calculator.

One tiny float64 MACE and one fixed padding for every structure, so the whole
file compiles a handful of programs (compiles dominate its run time).
"""

import itertools

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ase import Atoms
from conftest import ethanol, finite_difference_stress
from scipy.spatial.transform import Rotation

from mlpot import Calculator, ModelConfig, Potential, load
from mlpot.graph import build_graph
from mlpot.models import MODELS
from mlpot.models.mace import MACE
from mlpot.physics import edge_vectors, predict

CUTOFF = 3.0
SPECIES = (1, 6, 8)
TINY = {"features": 4, "radial_hidden": 8, "num_basis": 4, "readout_hidden": 4, "avg_num_neighbors": 5.0}
PADDING = {"num_nodes": 16, "num_edges": 320, "num_graphs": 2}


@pytest.fixture(scope="module")
def mace64():
    config = ModelConfig(
        "mace",
        CUTOFF,
        SPECIES,
        TINY,
        reference_energies=[-13.6, -1030.0, -2040.0],
        energy_scale=[0.5, 0.8, 1.1],
        dtype="float64",
    )
    return Potential.create(config, seed=1)


@pytest.fixture(scope="module")
def run(mace64):
    """One jitted program for every test: (Predictions, first-layer node features, d(sum E)/d(params))."""
    module = MACE(num_species=len(SPECIES), cutoff=CUTOFF, dtype="float64", **TINY)
    energy_fn = mace64.atom_energy_fn()

    def everything(params, graph):
        vectors = edge_vectors(graph.positions, graph.cell, graph)
        features = module.apply(params, vectors, graph, method=MACE.node_features).array
        grads = jax.grad(lambda p: jnp.sum(energy_fn(p, vectors, graph) * graph.node_mask))(params)
        return predict(energy_fn, params, graph), features, grads

    return jax.jit(everything)


def periodic_cho() -> Atoms:
    """Seven H/C/O atoms in a triclinic cell shorter than 2 cutoffs: images are neighbours."""
    rng = np.random.default_rng(7)
    cell = np.array([[4.2, 0.0, 0.0], [0.9, 4.0, 0.0], [0.4, -0.6, 4.4]])
    grid = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)])[:7] / 2.0 + 0.1
    fractional = grid + rng.normal(0, 0.03, grid.shape)
    return Atoms("CCOHHHH", scaled_positions=fractional, cell=cell, pbc=True)


def evaluate(run, potential, atoms, skin=0.0):
    """(Predictions, node features, parameter gradients) of one structure, fixed padding."""
    return run(potential.params, potential.graph(atoms, skin=skin, **PADDING))


def energy(run, potential, atoms):
    return float(evaluate(run, potential, atoms)[0].energy[0])


def test_registered_and_float32_by_default():
    assert MODELS["mace"] is MACE
    module = MACE(num_species=3, cutoff=CUTOFF, **TINY)
    g = build_graph(ethanol(), CUTOFF, SPECIES)
    vectors = edge_vectors(g.positions, g.cell, g)

    def init_and_apply(key):
        params = module.init(key, vectors, g)
        return params, module.apply(params, vectors, g)

    params, out = jax.eval_shape(init_and_apply, jax.random.PRNGKey(0))  # shapes only, no compile
    assert {x.dtype for x in jax.tree_util.tree_leaves(params)} == {jnp.dtype("float32")}
    assert out.shape == (g.num_nodes,) and out.dtype == jnp.float32


def test_rotation_rotates_l1_features_and_keeps_energies(mace64, run):
    atoms = ethanol()
    rotation = Rotation.random(random_state=11).as_matrix()
    turned = atoms.copy()
    turned.positions = atoms.positions @ rotation.T
    out, h, _ = evaluate(run, mace64, atoms)
    out_turned, h_turned, _ = evaluate(run, mace64, turned)
    energies, energies_turned = out.energies, out_turned.energies
    n = len(atoms)
    np.testing.assert_allclose(energies_turned[:n], energies[:n], atol=1e-10)
    irreps = e3nn.Irreps(f"{TINY['features']}x0e + {TINY['features']}x1o")
    l1 = e3nn.IrrepsArray(irreps, h[:n]).filter("1o").mul_to_axis().array  # (n, F, 3)
    l1_turned = e3nn.IrrepsArray(irreps, h_turned[:n]).filter("1o").mul_to_axis().array
    d = np.asarray(e3nn.Irrep("1o").D_from_matrix(jnp.asarray(rotation)))
    assert np.abs(l1).max() > 1e-3  # the l=1 features are not trivially zero
    np.testing.assert_allclose(l1_turned, l1 @ d.T, atol=1e-9)
    assert np.abs(l1_turned - l1).max() > 1e-3  # ... and they did move


def test_inversion_flips_l1_features_and_keeps_energies(mace64, run):
    atoms = ethanol()
    mirrored = atoms.copy()
    mirrored.positions = -atoms.positions
    out, h, _ = evaluate(run, mace64, atoms)
    out_mirrored, h_mirrored, _ = evaluate(run, mace64, mirrored)
    energies, energies_mirrored = out.energies, out_mirrored.energies
    n, f = len(atoms), TINY["features"]
    np.testing.assert_allclose(energies_mirrored[:n], energies[:n], atol=1e-10)
    np.testing.assert_allclose(h_mirrored[:n, :f], h[:n, :f], atol=1e-10)  # scalars: even
    np.testing.assert_allclose(h_mirrored[:n, f:], -h[:n, f:], atol=1e-10)  # 1o vectors: odd


def test_translation_and_permutation_invariance(mace64, run):
    atoms = periodic_cho()
    out = evaluate(run, mace64, atoms)[0]
    moved = atoms.copy()
    moved.positions += [0.37, -1.1, 2.9]
    out_moved = evaluate(run, mace64, moved)[0]
    order = np.random.default_rng(0).permutation(len(atoms))
    out_perm = evaluate(run, mace64, atoms[order])[0]
    n = len(atoms)
    np.testing.assert_allclose(out_moved.energies[:n], out.energies[:n], atol=1e-9)
    np.testing.assert_allclose(out_moved.forces[:n], out.forces[:n], atol=1e-9)
    np.testing.assert_allclose(out_perm.energies[:n], out.energies[:n][order], atol=1e-9)
    np.testing.assert_allclose(out_perm.forces[:n], out.forces[:n][order], atol=1e-9)
    assert np.ptp(out.energies[:n]) > 1e-4  # atoms really differ


def test_forces_are_minus_energy_gradient(mace64, run):
    atoms = periodic_cho()
    forces = np.asarray(evaluate(run, mace64, atoms)[0].forces[: len(atoms)])
    h = 1e-4
    for i, k in [(0, 0), (2, 1), (3, 2), (6, 0), (5, 1)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, k] += h
        minus.positions[i, k] -= h
        reference = -(energy(run, mace64, plus) - energy(run, mace64, minus)) / (2 * h)
        np.testing.assert_allclose(forces[i, k], reference, atol=1e-7, rtol=1e-6)
    assert np.abs(forces).max() > 1e-2


def test_stress_is_strain_derivative(mace64, run):
    atoms = periodic_cho()
    stress = np.asarray(evaluate(run, mace64, atoms)[0].stress[0])
    reference = finite_difference_stress(lambda a: energy(run, mace64, a), atoms)
    np.testing.assert_allclose(stress, reference, atol=1e-8, rtol=1e-5)
    assert np.abs(stress).max() > 1e-4
    np.testing.assert_allclose(stress, stress.T, atol=1e-12)


def test_smooth_at_cutoff_and_far_edges_contribute_nothing(mace64, run):
    def trio(d):  # an O-H pair far apart plus a C that sees the H only
        return Atoms("OHC", positions=[[0, 0, 0], [d, 0, 0], [d + 1.1, 0.4, 0]])

    # Edges between CUTOFF and CUTOFF + skin are in the graph but add exactly nothing.
    for d in (CUTOFF + 0.2, CUTOFF - 0.5):
        atoms = trio(d)
        near = evaluate(run, mace64, atoms)[0]
        far = evaluate(run, mace64, atoms, skin=1.5)[0]
        np.testing.assert_array_equal(np.asarray(far.energies), np.asarray(near.energies))
    # Energy and force go continuously to their no-bond values as d -> CUTOFF.
    beyond = evaluate(run, mace64, trio(CUTOFF + 0.01))[0]
    gaps = []
    for delta in (0.1, 0.01, 0.001):
        inside = evaluate(run, mace64, trio(CUTOFF - delta))[0]
        gaps.append((abs(float(inside.energy[0] - beyond.energy[0])), abs(float(inside.forces[0, 0]))))
    assert gaps[0][0] > 1e-7  # the bond matters inside the cutoff
    for (e1, f1), (e2, f2) in itertools.pairwise(gaps):
        assert e2 < e1 * 1e-2 and f2 < f1 * 0.1 + 1e-12  # envelope: E ~ delta^3, F ~ delta^2


def test_padding_edges_give_finite_values_and_gradients(mace64, run):
    atoms = periodic_cho()
    assert not np.all(mace64.graph(atoms, **PADDING).edge_mask)  # zero-length padding edges present
    out, _, grads = evaluate(run, mace64, atoms)
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(np.all(np.isfinite(x)) for x in leaves)
    assert np.all(np.isfinite(out.forces)) and np.all(np.isfinite(out.stress))
    assert min(float(np.abs(x).max()) for x in leaves) > 0  # every parameter array matters


def test_model_file_round_trip_through_the_calculator(mace64, run, tmp_path):
    path = tmp_path / "mace.mlpot"
    mace64.save(path)
    loaded = load(path)
    assert loaded.config == mace64.config
    for a, b in zip(jax.tree_util.tree_leaves(loaded.params), jax.tree_util.tree_leaves(mace64.params)):
        np.testing.assert_array_equal(a, b)
    atoms = periodic_cho()
    atoms.calc = Calculator(path)  # the same ASE path as PaiNN, from the file
    reference = evaluate(run, mace64, atoms)[0]
    n = len(atoms)
    assert atoms.get_potential_energy() == pytest.approx(float(reference.energy[0]), abs=1e-9)
    np.testing.assert_allclose(atoms.get_forces(), reference.forces[:n], atol=1e-9)
    np.testing.assert_allclose(atoms.get_stress(voigt=False), reference.stress[0], atol=1e-10)


def test_training_config_takes_mace_like_painn():
    from mlpot.training.config import from_dict

    hyper = {"features": 8, "hidden_l": 1, "l_max": 2, "correlation": 3, "avg_num_neighbors": 8.0}
    config = from_dict({"train_file": "frames.xyz", "model": {"name": "mace", **hyper}})
    assert config.model == {"name": "mace", **hyper}
    with pytest.raises(ValueError, match="correlation"):  # a typo names the closest real hyperparameter
        from_dict({"train_file": "frames.xyz", "model": {"name": "mace", "corelation": 2}})


def test_chunked_neighbour_sum_equals_the_one_pass_sum(mace64, monkeypatch):
    """A large graph sums its messages over chunks of edges (memory); energies, forces, stress and the
    training gradient (parameters of a force loss: second order through the chunks) must not change.
    Forced here on a small graph, with an edge count that leaves the last chunk part padding."""
    from functools import partial

    from mlpot.models import edge_chunks
    from mlpot.physics import predict as physics_predict

    potential = Potential(mace64.config, jax.tree_util.tree_map(lambda x: x + 0.05 * jnp.sign(x), mace64.params))
    graph = potential.graph(periodic_cho(), num_nodes=16, num_edges=300, num_graphs=2)
    real_edges = int(np.sum(graph.edge_mask))
    width = TINY["features"] * 3**2  # channels x (l_max + 1)^2, l_max 2 by default

    def outputs():  # a fresh trace, so the patched constants decide the branch
        energy_fn = potential.atom_energy_fn()
        run = jax.jit(partial(physics_predict, energy_fn, compute_stress=True))

        def force_loss(params):
            return jnp.sum(physics_predict(energy_fn, params, graph, compute_stress=False).forces ** 2)

        return run(potential.params, graph), jax.jit(jax.grad(force_loss))(potential.params)

    one_pass, one_pass_grad = outputs()
    assert edge_chunks.edge_chunk(300, width) is None
    monkeypatch.setattr(edge_chunks, "CHUNKED_ABOVE", 0)
    monkeypatch.setattr(edge_chunks, "CHUNK_NUMBERS", 64 * width)
    assert edge_chunks.edge_chunk(300, width) == 64 and 300 % 64 and real_edges > 64
    chunked, chunked_grad = outputs()
    np.testing.assert_allclose(chunked.energy, one_pass.energy, rtol=1e-13)
    np.testing.assert_allclose(chunked.forces, one_pass.forces, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(chunked.stress, one_pass.stress, rtol=1e-10, atol=1e-12)
    assert np.abs(one_pass.forces).max() > 1e-2
    for a, b in zip(jax.tree_util.tree_leaves(chunked_grad), jax.tree_util.tree_leaves(one_pass_grad)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
