"""Host-side graph building: neighbour pairs against ASE's and matscipy's independent searches; padding."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.neighborlist import neighbor_list
from conftest import pair_set, triclinic_si

from mlpot.graph import _search_cell, bucket_size, build_graph, neighbour_pairs, neighbour_search


def _turned(atoms):
    atoms.rotate(90, "x", rotate_cell=True)
    return atoms


@pytest.mark.parametrize(
    "atoms",
    [
        triclinic_si(),
        Atoms("Cu", cell=[[2.0, 0, 0], [0.5, 2.1, 0], [0.2, 0.3, 1.9]], pbc=True),  # one atom, box << cutoff
        fcc111("Cu", (2, 2, 3), vacuum=5.0, periodic=False),  # slab: mixed pbc set below
        _turned(fcc111("Cu", (2, 2, 3), vacuum=5.0, periodic=False)),  # its periodic vectors at 60°, in xz
    ],
    ids=["triclinic", "tiny_cell", "slab", "turned_slab"],
)
def test_pairs_match_ase(atoms):
    if len(atoms) == 12:
        atoms.pbc = [True, True, False]
    if not all(atoms.pbc):  # the search cell built for it is a proper cell, its periodic rows kept
        search = _search_cell(atoms, 5.0)
        assert abs(np.linalg.det(search)) > 1.0
        np.testing.assert_array_equal(search[atoms.pbc], atoms.cell.array[atoms.pbc])
    cutoff = 5.0
    ours = pair_set(*neighbour_pairs(atoms, cutoff))
    theirs = pair_set(*neighbor_list("ijS", atoms, cutoff))
    assert ours == theirs
    assert len(ours) > 0


@pytest.mark.parametrize(
    "atoms",
    [
        triclinic_si(),
        Atoms("Cu2", [[0, 0, 0], [1.1, 0.9, 0.7]], cell=[[2.0, 0, 0], [0.5, 2.1, 0], [0.2, 0.3, 1.9]], pbc=True),
        molecule("C6H6"),
    ],
    ids=["triclinic", "tiny_cell", "molecule"],
)
def test_half_list_mirrored_is_the_full_list(atoms):
    """MD's skin list holds each pair once and mirrors it on the device: (i, j, S) plus (j, i, -S)
    must give every ordered pair exactly once, also an atom's pairs with its own images."""
    full = pair_set(*neighbour_search(atoms, 5.0)[:3])
    i, j, shifts, d = neighbour_search(atoms, 5.0, half=True)
    assert pair_set(np.r_[i, j], np.r_[j, i], np.r_[shifts, -shifts]) == full
    assert 2 * len(i) == len(full) > 0
    vectors = atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array
    np.testing.assert_allclose(d, np.linalg.norm(vectors, axis=1), rtol=0, atol=1e-10)


def test_pairs_and_distances_with_unwrapped_positions_in_a_skewed_cell():
    """MD hands the search unwrapped positions (atoms several cells away): same pairs and shifts as
    matscipy's search, and distances that match the vectors the shifts give."""
    from matscipy.neighbours import neighbour_list

    atoms = bulk("Cu", "fcc", 3.6, cubic=True).repeat(3)
    atoms.set_cell(atoms.cell.array @ np.array([[1, 0.2, 0.1], [0, 1, 0.3], [0, 0, 1]]), scale_atoms=True)
    rng = np.random.default_rng(0)
    atoms.positions += rng.integers(-2, 3, (len(atoms), 3)) @ atoms.cell.array + rng.normal(0, 0.1, (len(atoms), 3))
    i, j, shifts, d = neighbour_search(atoms, 5.5)
    assert pair_set(i, j, shifts) == pair_set(*neighbour_list("ijS", atoms, 5.5)) and len(i) > 5000
    vectors = atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array
    np.testing.assert_allclose(d, np.linalg.norm(vectors, axis=1), rtol=0, atol=1e-10)
    assert d.max() < 5.5


@pytest.mark.parametrize(
    "atoms",
    [Atoms("H"), Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]), molecule("CO2"), molecule("C6H6")],
    ids=["single_atom", "H2_no_cell", "linear", "planar"],
)
def test_molecules_without_cell(atoms):
    """Singular or zero cells never reach the search; all pairs within the cutoff are found."""
    i, j, shifts = neighbour_pairs(atoms, 3.0)
    distances = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
    expected = {(int(a), int(b)) for a, b in zip(*np.nonzero((distances < 3.0) & (distances > 0)), strict=True)}
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == expected and len(i) == len(expected)
    assert np.all(shifts == 0)


def test_an_atom_flown_far_off_is_an_error_naming_it_not_a_crash():
    # 10 µm: not atomistic (and, before the search box was bounded, a vesin crash: SIGFPE, no message)
    from mlpot.graph import MAX_EXTENT, InputError

    near = Atoms("Ar3", positions=[[0, 0, 0], [3.8, 0, 0], [0.9 * MAX_EXTENT, 0, 0]])
    assert len(neighbour_search(near, 5.0)[0]) == 2  # still searched: the pair 0-1, both ways
    far = Atoms("Ar3", positions=[[0, 0, 0], [3.8, 0, 0], [10 * MAX_EXTENT, 0, 0]])
    with pytest.raises(InputError, match=r"atoms span 1e\+06 Å .*\(atom 2 is 1e\+06 Å from the others' median\)"):
        neighbour_search(far, 5.0)
    with pytest.raises(InputError, match=r"^run.xyz, frame 7: the atoms span"):  # where it came from, when known
        neighbour_pairs(far, 5.0, "run.xyz, frame 7")


def _brute_force_pairs(atoms, cutoff, reach=2):
    """Every (i, j, S) within the cutoff, S over -reach..reach along the periodic directions."""
    ranges = [range(-reach, reach + 1) if periodic else [0] for periodic in atoms.pbc]
    shifts = np.array(np.meshgrid(*ranges, indexing="ij")).reshape(3, -1).T
    found = []
    for shift in shifts:
        vectors = atoms.positions[None] - atoms.positions[:, None] + shift @ atoms.cell.array
        for i, j in zip(*np.nonzero(np.linalg.norm(vectors, axis=-1) < cutoff), strict=True):
            if i != j or shift.any():
                found.append((int(i), int(j), tuple(int(k) for k in shift)))
    return sorted(found)


@pytest.mark.parametrize(
    "atoms",
    [  # each crashed vesin (SIGFPE: the process gone) or took seconds where the search had a non-periodic direction
        Atoms("H2O", [[0, 0, 0], [0.9, 0, 0], [0, 2000, 2000]], cell=[10, 10, 10], pbc=[1, 0, 0]),  # chain, atom off
        Atoms("H2O", [[0, 0, 0], [0.9, 0, 0], [0, 0.5, 3]], cell=[1500, 1500, 10], pbc=[1, 1, 0]),  # wide slab
        Atoms("H3", [[0, 0, 0], [1, 0, 0], [5000, 5000, 0]]),  # a flat molecule 7,000 Å across
    ],
    ids=["chain_with_a_far_atom", "wide_slab", "flat_and_wide"],
)
def test_elongated_structures_are_searched(atoms):
    i, j, shifts, d = neighbour_search(atoms, 4.0)
    assert pair_set(i, j, shifts) == _brute_force_pairs(atoms, 4.0) and len(i) > 0
    vectors = atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array  # the real cell's shifts
    np.testing.assert_allclose(d, np.linalg.norm(vectors, axis=1), rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    "atoms, box",
    [
        (Atoms("H2O", [[0, 0, 0], [0.9, 0, 0], [0, 1e4, 1e4]], cell=[10, 10, 10], pbc=[1, 0, 0]), "10 x 1.001e"),
        (Atoms("H2", [[0, 0, 0], [0.9, 0, 0]], cell=[[3, 0, 0], [0.5, 3, 0], [0, 0, 5e5]], pbc=True), "2.959 x 3 x 5e"),
    ],
    ids=["short_chain_with_an_atom_far_off", "thin_cell_far_too_long"],
)
def test_a_box_too_elongated_for_the_search_is_an_error_not_a_crash(atoms, box):
    from mlpot.graph import InputError

    with pytest.raises(InputError, match=rf"run.xyz, frame 3: .* a search box {box}.*too elongated"):
        neighbour_search(atoms, 4.0, where="run.xyz, frame 3")


def test_padding_and_buckets():
    atoms = [bulk("Si", "diamond", 5.43), triclinic_si()]
    graph = build_graph(atoms, 4.0, [14])
    assert graph.num_nodes == bucket_size(4 + 1) and graph.num_graphs == 3
    assert graph.node_mask.sum() == 4 and graph.graph_mask.tolist() == [True, True, False]
    assert np.all(graph.node_graph[~graph.node_mask] == 2)
    pad = ~graph.edge_mask
    assert np.all(graph.senders[pad] == graph.num_nodes - 1) and np.all(graph.receivers[pad] == graph.num_nodes - 1)
    vectors = graph.positions[graph.senders] - graph.positions[graph.receivers]
    vectors += np.einsum("ek,ekl->el", graph.shifts, graph.cell[graph.node_graph[graph.receivers]])
    d = np.linalg.norm(vectors[graph.edge_mask], axis=1)
    assert d.max() < 4.0 and d.min() > 1.0


def test_bucket_ladder_is_monotone_and_tight():
    sizes = [bucket_size(n) for n in range(1, 5000)]
    assert all(s >= n for n, s in zip(range(1, 5000), sizes))
    assert all(s <= 1.25 * max(n, 8) for n, s in zip(range(1, 5000), sizes))
    assert len(set(sizes)) < 60  # logarithmic number of distinct shapes
