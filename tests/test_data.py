"""Reading, validation, references, splits, neighbour caching and batching."""

from __future__ import annotations

import warnings

import ase.io
import numpy as np
import pytest
from ase.build import molecule
from ase.calculators.singlepoint import SinglePointCalculator
from test_train_helpers import crystals, labelled, molecules

from mlpot import InputError, data, reading


def _write(tmp_path, images, name="frames.xyz"):
    path = tmp_path / name
    ase.io.write(path, images)
    return path


def test_reads_labels_from_several_files(tmp_path):
    a = _write(tmp_path, molecules(3), "a.xyz")
    b = _write(tmp_path, crystals(2), "b.xyz")
    frames = data.read_frames([a, b])
    assert len(frames) == 5
    assert frames[0].forces.shape == (len(frames[0].atoms), 3)
    assert frames[0].stress is None  # molecules: no stress
    assert frames[3].stress.shape == (3, 3)
    written = ase.io.read(b, 0).get_stress(voigt=False)  # the label, through ASE's own reader
    np.testing.assert_allclose(frames[3].stress, written, rtol=1e-12)
    assert np.abs(written).max() > 0
    assert "b.xyz, frame 0" in frames[3].where


def test_reads_ase_trajectory_and_db(tmp_path):
    images = crystals(2)
    for name in ("frames.traj", "frames.db"):
        frames = data.read_frames(_write(tmp_path, images, name))
        assert len(frames) == 2 and frames[1].stress.shape == (3, 3)
        np.testing.assert_allclose(frames[1].forces, images[1].calc.results["forces"])


def test_custom_label_keys(tmp_path):
    atoms = molecule("H2O")
    atoms.info["dft_energy"] = -12.5
    atoms.arrays["dft_forces"] = np.ones((3, 3))
    path = _write(tmp_path, [atoms])
    frame = data.read_frames(path, energy_key="dft_energy", forces_key="dft_forces")[0]
    assert frame.energy == -12.5 and np.all(frame.forces == 1.0)


def _bad_frames():
    good = labelled(molecule("H2O"), 0)
    no_energy = molecule("H2O")
    no_energy.calc = SinglePointCalculator(no_energy, forces=np.zeros((3, 3)))
    nan_forces = labelled(molecule("H2O"), 1)
    nan_forces.calc.results["forces"][1, 2] = np.nan
    unknown = labelled(molecule("NH3"), 2)
    return good, no_energy, nan_forces, unknown


@pytest.mark.parametrize(
    "which, message",
    [
        (1, "frame 1: missing label 'energy'"),
        (2, "frame 1: field 'forces' contains NaN"),
        (3, "frame 1: element(s) ['N'] not in the model"),
    ],
)
def test_bad_input_errors_name_file_frame_and_field(tmp_path, which, message):
    frames = _bad_frames()
    path = _write(tmp_path, [frames[0], frames[which]])
    with pytest.raises(InputError) as err:
        data.read_frames(path, species=(1, 8))
    assert str(path) in str(err.value) and message in str(err.value)


def test_wrong_force_shape_and_empty_frame(tmp_path):
    atoms = labelled(molecule("H2O"), 0)
    atoms.info["short_forces"] = np.zeros(6)
    path = _write(tmp_path, [atoms], "f.xyz")
    with pytest.raises(InputError, match=r"f.xyz, frame 0: field 'short_forces' has shape \(6,\), expected \(3, 3\)"):
        data.read_frames(path, forces_key="short_forces")
    empty = ase.Atoms()
    with pytest.raises(InputError, match="frame 3: has no atoms"):
        reading._frame(empty, "x.xyz, frame 3", ("energy", "forces", "stress"), ("energy",), None)


@pytest.mark.parametrize(
    "pbc, cell",
    [
        ([True, True, False], [[3.0, 0, 0], [0, 0, 0], [0, 0, 0]]),  # vesin: SIGFPE, the process dies
        (True, [[3.0, 0, 0], [0, 3.0, 0], [3.0, 3.0, 0]]),  # vesin: "box matrix is not invertible", no frame
        (True, np.zeros((3, 3))),
    ],
)
def test_degenerate_periodic_cell_is_refused_naming_the_frame(pbc, cell):
    atoms = labelled(molecule("H2O"), 0)
    atoms.pbc, atoms.cell = pbc, cell
    with pytest.raises(InputError, match=r"x.xyz, frame 2: the cell vectors along the periodic direction"):
        reading._frame(atoms, "x.xyz, frame 2", ("energy", "forces", "stress"), ("energy",), None)


@pytest.mark.parametrize("side", [0.3, 0.05])  # -4.8e21 eV; an out-of-memory error naming nothing
def test_a_periodic_cell_far_below_any_bond_length_is_refused(side):
    atoms = labelled(molecule("H2O"), 0)
    atoms.pbc, atoms.cell = True, [side, 2.0, 2.0]
    with pytest.raises(InputError, match=rf"x.xyz, frame 2: periodic cell vector 0 is {side:g} Å long.*in Å\?"):
        reading._frame(atoms, "x.xyz, frame 2", ("energy", "forces", "stress"), ("energy",), None)
    atoms.pbc = [False, True, True]  # a non-periodic direction may have any cell vector
    reading._frame(atoms, "x.xyz, frame 2", ("energy", "forces", "stress"), ("energy",), None)


@pytest.mark.parametrize("pbc", [True, (True, True, False)])
def test_long_cell_vectors_that_make_a_short_period_are_refused(pbc):
    # every vector is 5 Å, but b - a is a 0.02 Å lattice translation: an energy of -2e24 eV before
    atoms = labelled(molecule("H2O"), 0)
    atoms.pbc, atoms.cell = pbc, [[5.0, 0, 0], [5.0, 0.02, 0], [0, 0, 5.0]]
    with pytest.raises(InputError, match=r"x.xyz, frame 2: .* lattice translation \[.*\] only 0.02 Å long"):
        reading._frame(atoms, "x.xyz, frame 2", ("energy", "forces", "stress"), ("energy",), None)
    atoms.cell = [[5.0, 0, 0], [2.5, 4.33, 0], [0, 0, 5.0]]  # skewed, not degenerate: taken
    reading._frame(atoms, "x.xyz, frame 2", ("energy", "forces", "stress"), ("energy",), None)


def test_skip_bad_frames_warns_with_count(tmp_path):
    collapsed = labelled(molecule("H2O"), 3)
    collapsed.positions[1] = collapsed.positions[0]  # found only by a neighbour search
    path = _write(tmp_path, [*_bad_frames(), collapsed])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = data.read_frames(path, species=(1, 8), skip_bad_frames=True)
    assert len(frames) == 1
    assert any("skipped 4 bad frame(s) of 5" in str(w.message) for w in caught)
    data.prepare(frames, 3.0, (1, 8))  # what is left trains
    with pytest.raises(InputError, match=r"frame 4: atoms 0 and 1 are on top of each other"):
        data.prepare(data.read_frames(path, index="4:"), 3.0, (1, 8))  # not skipping: the search names it


def test_skip_bad_frames_keeps_the_frames_before_a_torn_last_one(tmp_path):
    # what a writer killed mid-frame leaves; without skip_bad_frames the file is still refused, by frame
    path = _write(tmp_path, [labelled(molecule("H2O"), k) for k in range(4)])
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2]))  # frame 3 loses its last atom line
    with pytest.raises(InputError, match=r"frames.xyz, frame 3: cannot read"):
        data.read_frames(path)
    with pytest.warns(UserWarning, match=r"skipped 1 bad frame\(s\) of 4; first: .*frames.xyz, frame 3: cut short"):
        frames = data.read_frames(path, skip_bad_frames=True)
    assert [f.where.rsplit(" ", 1)[1] for f in frames] == ["0", "1", "2"]
    assert frames[2].energy == pytest.approx(labelled(molecule("H2O"), 2).get_potential_energy())
    # a whole frame that cannot be parsed mid-file is no torn end: the frames after it would be lost uncounted
    lines[5 + 3] = "H abc 0.0 0.0 0 0 0\n"  # frame 1's first atom line
    path.write_text("".join(lines))
    with pytest.raises(InputError, match=r"frames.xyz, frame 1: cannot read"):
        data.read_frames(path, skip_bad_frames=True)


def test_a_last_line_cut_inside_a_number_is_not_taken_as_a_label(tmp_path):
    # "0.70285769" cut to "0.70" still parses: ASE raised nothing, and the torn force was trained on
    path = _write(tmp_path, [labelled(molecule("H2O"), k) for k in range(3)])
    whole = path.read_text()
    path.write_text(whole[:-5])
    with pytest.warns(
        UserWarning, match=r"frames.xyz, frame 2: the file ends without a newline, inside a number of its last line"
    ):
        assert len(data.read_frames(path)) == 3  # kept, said
    with pytest.warns(UserWarning, match=r"skipped 1 bad frame\(s\) of 3; first: .*frame 2: the file ends without"):
        assert len(data.read_frames(path, skip_bad_frames=True)) == 2
    path.write_text(whole + "\n")  # trailing blank lines are no frames lost
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(data.read_frames(path)) == 3
        path.write_text(whole[:-1])  # whole, without the newline ("\n".join): nothing cut, nothing said
        assert len(data.read_frames(path, skip_bad_frames=True)) == 3
        path.write_text(whole[:-5])
        assert len(data.read_frames(path, index="0:2")) == 2  # the torn frame is not read: nothing said


def test_a_slice_of_a_truncated_compressed_file_reads_as_ase_reads_it(tmp_path):
    import gzip

    path = _write(tmp_path, [labelled(molecule("H2O"), k) for k in range(400)])
    packed = tmp_path / "frames.xyz.gz"
    data_ = gzip.compress(path.read_bytes())
    packed.write_bytes(data_[: 3 * len(data_) // 4])  # the scan for blank lines must not trip on the damaged end
    assert len(data.read_frames(packed, index="0:5")) == 5


def test_a_blank_line_between_frames_is_refused_not_the_end_of_the_file(tmp_path):
    # ASE's extxyz reader stops at a blank line: two files joined with one between read as the first only
    first = _write(tmp_path, [labelled(molecule("H2O"), 0)], "a.xyz")
    second = _write(tmp_path, [labelled(molecule("H2O"), k) for k in (1, 2)], "b.xyz")
    joined = tmp_path / "joined.xyz"
    joined.write_text(first.read_text() + "\n" + second.read_text())
    assert len(ase.io.read(joined, ":")) == 1  # what went unnoticed
    for skip in (False, True):
        with pytest.raises(InputError, match=r"joined.xyz, line 6: a blank line before frame 1, .* the 2 frame\(s\)"):
            data.read_frames(joined, skip_bad_frames=skip)
    assert len(data.read_frames(joined, index="0")) == 1  # what was asked for is what ASE reads


def test_an_ase_database_gives_its_key_value_pairs_and_data_as_labels(tmp_path):
    """ase.io.read drops a row's key-value pairs and data: labels stored there (REF_energy=...) and
    the config_type were invisible, and the missing-label hint pointed at another quantity."""
    import ase.db

    images = [labelled(molecule("H2O"), k) for k in range(3)]
    with ase.db.connect(tmp_path / "set.db") as database:
        for k, atoms in enumerate(images):
            bare = atoms.copy()  # labels under other names only
            database.write(
                bare,
                config_type="md" if k else "opt",
                REF_energy=atoms.get_potential_energy() + 1.0,
                # free-form entries beside the labels: uneven lists, text, a per-frame vector of length N
                data={
                    "REF_forces": atoms.get_forces() + 1.0,
                    "bonds": [[1, 2], [0], [0]],
                    "code": "VASP",
                    "dipole": [0.1, 0.2, 0.3],
                },
            )
    frames = data.read_frames(tmp_path / "set.db", energy_key="REF_energy", forces_key="REF_forces")
    assert [f.energy for f in frames] == pytest.approx([a.get_potential_energy() + 1.0 for a in images])
    np.testing.assert_allclose(frames[2].forces, images[2].get_forces() + 1.0)
    assert [f.atoms.info["config_type"] for f in frames] == ["opt", "md", "md"]
    assert frames[0].atoms.info["code"] == "VASP" and frames[0].atoms.info["bonds"] == [[1, 2], [0], [0]]
    assert "dipole" in frames[0].atoms.info and "dipole" not in frames[0].atoms.arrays
    queried = data.read_frames(tmp_path / "set.db", "REF_energy", "REF_forces", index="config_type=md")
    assert [f.energy for f in queried] == pytest.approx([f.energy for f in frames[1:]])
    assert [f.where for f in data.read_frames(tmp_path / "set.db", "REF_energy", "REF_forces", index="1:")] == [
        f"{tmp_path / 'set.db'}, frame 1",
        f"{tmp_path / 'set.db'}, frame 2",
    ]


def test_reference_energies_least_squares_and_isolated(tmp_path):
    species = (1, 6, 8)
    e0 = np.array([-13.6, -1025.3, -2035.6])
    images = molecules(10)
    images = [a for a in images if set(a.numbers) <= set(species)]
    for atoms in images:
        counts = np.bincount(np.searchsorted(species, atoms.numbers), minlength=3)
        atoms.calc.results["energy"] = float(counts @ e0) + 0.01
    frames = data.read_frames(_write(tmp_path, images))
    fitted = data.fit_reference_energies(frames, species)
    residual = np.array([f.energy for f in frames]) - data.composition(frames, species) @ fitted
    assert np.max(np.abs(residual)) < 1e-6  # float64: exact up to the constant 0.01 absorbed per atom
    isolated = [
        data.Frame(ase.Atoms([z]), e, None, None, f"e0.xyz, frame {k}") for k, (z, e) in enumerate(zip(species, e0))
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # these frames lie +0.01 eV from their atoms: nothing to say
        np.testing.assert_array_equal(data.fit_reference_energies(frames, species, isolated), e0)
    in_hartree = [f._replace(energy=f.energy / 27.211386) for f in isolated]
    with pytest.warns(
        UserWarning, match=r"isolated atoms file e0.xyz: the training frames lie -\d{3}\.?\d* eV per atom"
    ):
        data.fit_reference_energies(frames, species, in_hartree)
    with pytest.raises(InputError, match=r"isolated atoms file e0.xyz has no energy for element\(s\) \['O'\]"):
        data.fit_reference_energies(frames, species, isolated[:2])
    again = data.Frame(ase.Atoms([1]), e0[0] + 0.5, None, None, "e0.xyz, frame 3")
    with pytest.raises(InputError, match=r"e0.xyz, frame 3: a second energy for H \(-13.1 eV\) .* e0.xyz, frame 0"):
        data.fit_reference_energies(frames, species, [*isolated, again])
    np.testing.assert_array_equal(data.fit_reference_energies(frames, species, [*isolated, isolated[0]]), e0)
    pair = data.Frame(ase.Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]), -31.7, None, None, "e0.xyz, frame 4")
    with pytest.raises(
        InputError, match="e0.xyz, frame 4: an isolated atoms file holds one-atom frames, this one has 2"
    ):
        data.fit_reference_energies(frames, species, [*isolated, pair])


def test_splits_are_disjoint_seeded_and_complete():
    train, valid, test = data.split_indices(101, 0.1, 0.2, seed=3)
    assert not set(train) & set(valid) and not set(train) & set(test) and not set(valid) & set(test)
    assert sorted(np.concatenate([train, valid, test])) == list(range(101))
    assert len(valid) == 10 and len(test) == 20
    again = data.split_indices(101, 0.1, 0.2, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip((train, valid, test), again))
    other = data.split_indices(101, 0.1, 0.2, seed=4)
    assert not np.array_equal(valid, other[1])
    # fractions that round to no frame still get one (the user asked for a test score), not silently none
    assert [len(part) for part in data.split_indices(10, 0.01, 0.04)] == [8, 1, 1]
    assert [len(part) for part in data.split_indices(2, 0.01, 0.04)] == [1, 1, 0]  # one frame must train


def test_frames_shared_between_files_are_found_also_when_wrapped(tmp_path):
    frames = data.read_frames(_write(tmp_path, molecules(6)))
    assert data.shared_frames(frames[:4], frames[4:]) == []
    assert data.shared_frames(frames[:4], frames[2:]) == [(frames[2].where, frames[2].where), (frames[3].where,) * 2]
    # a periodic copy with its atoms wrapped back into the cell is the same structure; a shifted one is not
    original = _emt_copper()

    def moved(shift):
        atoms = original.copy()
        atoms.positions += shift
        atoms.wrap()
        atoms.calc = SinglePointCalculator(atoms, **original.calc.results)
        return atoms

    wrapped = moved(original.cell[0] + 0.5 * original.cell[2])  # a lattice vector, then half-way out and back
    wrapped.positions += 0.5 * original.cell[2]  # two half-steps along c: positions outside the cell again
    wrapped.wrap()
    assert not np.allclose(wrapped.positions, original.positions)
    a = data.read_frames(_write(tmp_path, [original], "a.xyz"))
    b = data.read_frames(_write(tmp_path, [moved([0.0, 0.0, 0.4]), wrapped], "b.xyz"))
    assert data.shared_frames(a, b) == [(a[0].where, b[1].where)]


def test_batches_labels_and_bounded_shapes(tmp_path):
    frames = data.read_frames(_write(tmp_path, molecules(7) + crystals(4)))
    dataset = data.prepare(frames, 3.0, data.species_of_frames(frames))
    batches = data.batches(dataset, 3, np.random.default_rng(0).permutation(11))
    assert len(batches) == 4
    shapes = {(g.num_nodes, g.num_edges, g.num_graphs) for g, _ in batches}
    assert all(s[2] == 4 for s in shapes)
    for graph, labels in batches:
        assert np.sum(graph.edge_mask) <= graph.num_edges and np.sum(graph.node_mask) < graph.num_nodes
        assert not labels.energy_mask[-1] and not labels.forces_mask[-1]  # the padding graph
        assert np.all(labels.forces[~graph.node_mask] == 0)
        n_real = int(graph.graph_mask.sum())
        assert labels.energy_mask[:n_real].all()
    graph, labels = data.collate(dataset, [7, 0], 3)  # a crystal (stress) then a molecule (none)
    assert list(labels.stress_mask) == [True, False, False, False]
    np.testing.assert_allclose(labels.forces[: len(frames[7].atoms)], frames[7].forces)


@pytest.mark.parametrize("image", [False, True])
def test_atoms_on_top_of_each_other_are_refused_naming_the_frame(tmp_path, image):
    # A zero-length edge is how padding looks to the models: no energy, no force, so the
    # short-range wall would vanish exactly at r = 0 (E was finite and F = 0 before this check).
    atoms = labelled(molecule("H2O"), 0)
    atoms.cell, atoms.pbc = np.eye(3) * 10.0, True
    atoms.positions[2] = atoms.positions[1] + ([10.0, 0, 0] if image else 0.0)
    path = _write(tmp_path, [labelled(molecule("H2O"), 1), atoms])
    frames = data.read_frames(path)
    with pytest.raises(InputError, match=r"frame 1: atoms \d and \d are on top of each other") as err:
        data.prepare(frames, 5.0, (1, 8))
    assert str(path) in str(err.value) and ("periodic image" in str(err.value)) == image


def _strained_copper():
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", "fcc", 3.5) * (2, 2, 1)  # compressed from 3.6 Å: a stress of ~10 GPa
    atoms.set_cell(atoms.cell.array + [[0, 0.1, 0], [0, 0, 0.2], [0.1, 0, 0]], scale_atoms=True)
    atoms.rattle(0.05, seed=1)
    atoms.calc = EMT()
    return atoms


def _virial_by_strain(atoms, h=1e-5):
    """W = -dE/d(epsilon) by central differences of symmetric strains: the definition nequip and MACE use."""
    w = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = []
            for sign in (1, -1):
                strained = atoms.copy()
                strained.calc = atoms.calc
                eps = np.zeros((3, 3))
                eps[a, b] += sign * h / 2
                eps[b, a] += sign * h / 2
                strained.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
                e.append(strained.get_potential_energy())
            w[a, b] = -(e[0] - e[1]) / (2 * h)
    return w


def test_a_virial_label_gives_the_stress_as_minus_virial_over_volume(tmp_path):
    atoms = _strained_copper()
    stress, energy, forces = atoms.get_stress(voigt=False), atoms.get_potential_energy(), atoms.get_forces()
    assert np.abs(stress).max() > 0.01  # eV/Å^3: far from zero, so a wrong sign or volume cannot pass
    virial = _virial_by_strain(atoms)
    labelled_atoms = atoms.copy()
    labelled_atoms.calc = SinglePointCalculator(labelled_atoms, energy=energy, forces=forces)
    labelled_atoms.info["virial"] = virial
    (frame,) = data.read_frames(_write(tmp_path, [labelled_atoms]))
    np.testing.assert_allclose(frame.stress, stress, atol=1e-6)


def test_mace_style_prefixed_labels_find_their_virial(tmp_path):
    # MACE's newer files name every label REF_*: with stress_key REF_stress, REF_virials is the virial.
    atoms = _strained_copper()
    stress, energy, forces = atoms.get_stress(voigt=False), atoms.get_potential_energy(), atoms.get_forces()
    labelled = atoms.copy()
    labelled.info.update(REF_energy=energy, REF_virials=_virial_by_strain(atoms))
    labelled.arrays["REF_forces"] = forces
    path = _write(tmp_path, [labelled])
    (frame,) = data.read_frames(path, "REF_energy", "REF_forces", "REF_stress")
    np.testing.assert_allclose(frame.stress, stress, atol=1e-6)
    # the hint names the stress_key that reads the virial, not the virial's own name
    hint = r"no stress label 'stress', but field\(s\) \['REF_virials'\]; set stress_key: REF_stress \(mlpot eval: --stress-key REF_stress\) to train"
    with pytest.warns(UserWarning, match=hint):
        (unlabelled,) = data.read_frames(path, "REF_energy", "REF_forces")  # stress_key 'stress': no REF_ virial
    assert unlabelled.stress is None


def test_a_virial_named_as_stress_key_is_refused_with_the_key_that_reads_it(tmp_path):
    # W (eV) read as sigma (eV/Å^3) would be off by -V and small enough to pass the size check
    atoms = _strained_copper()
    labelled = atoms.copy()
    labelled.info.update(REF_energy=atoms.get_potential_energy(), REF_virials=_virial_by_strain(atoms))
    labelled.arrays["REF_forces"] = atoms.get_forces()
    path = _write(tmp_path, [labelled])
    with pytest.raises(InputError, match=r"stress_key 'REF_virials' names a virial.*set stress_key: REF_stress"):
        data.read_frames(path, "REF_energy", "REF_forces", "REF_virials")
    with pytest.raises(InputError, match=r"stress_key 'virial' names a virial.*set stress_key: stress"):
        data.read_frames(path, "REF_energy", "REF_forces", "virial")


def test_a_virial_stored_as_stress_is_refused_naming_frame_and_fields(tmp_path):
    atoms = _strained_copper()
    energy, forces, virial = atoms.get_potential_energy(), atoms.get_forces(), _virial_by_strain(atoms)
    consistent, swapped = atoms.copy(), atoms.copy()
    consistent.calc = SinglePointCalculator(consistent, energy=energy, forces=forces, stress=atoms.get_stress())
    consistent.info["virials"] = virial
    swapped.calc = SinglePointCalculator(swapped, energy=energy, forces=forces, stress=virial)  # eV under 'stress'
    swapped.info["virials"] = virial
    path = _write(tmp_path, [consistent, swapped])
    with pytest.raises(InputError, match=r"frame 1: field 'stress' disagrees with field 'virials'.*virial"):
        data.read_frames(path)
    with pytest.warns(UserWarning, match="skipped 1 bad frame"):
        frames = data.read_frames(path, skip_bad_frames=True)
    assert len(frames) == 1 and frames[0].stress is not None


def test_an_asymmetric_stress_label_is_refused_and_round_off_is_averaged_away(tmp_path):
    atoms = _strained_copper()
    energy, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
    noisy, broken = atoms.copy(), atoms.copy()
    for copy, skew in ((noisy, 1e-7), (broken, 0.05)):  # 0.05 eV/Å^3 = 8 GPa between xy and yx
        label = stress.copy()
        label[0, 1] += skew
        copy.info.update(REF_energy=energy, REF_stress=label.reshape(-1))
        copy.arrays["REF_forces"] = forces
    (frame,) = data.read_frames(_write(tmp_path, [noisy]), "REF_energy", "REF_forces", "REF_stress")
    np.testing.assert_allclose(frame.stress, frame.stress.T, rtol=0, atol=0)
    np.testing.assert_allclose(frame.stress, stress, atol=1e-6)
    path = _write(tmp_path, [noisy, broken])
    with pytest.raises(InputError, match=r"frame 1: field 'REF_stress' is not symmetric \(largest .* = 0.05\)"):
        data.read_frames(path, "REF_energy", "REF_forces", "REF_stress")
    # Under the name 'stress' ASE's extxyz reader keeps one triangle of the 9 numbers: the header is read again
    plain = tmp_path / "plain.xyz"
    plain.write_text(path.read_text().replace("REF_stress=", "stress="))
    with pytest.raises(InputError, match=r"plain.xyz, frame 1: field 'stress' is not symmetric \(largest .* = 0.05\)"):
        data.read_frames(plain, "REF_energy", "REF_forces")
    (frame,) = data.read_frames(plain, "REF_energy", "REF_forces", index="0")
    np.testing.assert_allclose(frame.stress, stress, atol=1e-6)
    with pytest.warns(UserWarning, match="skipped 1 bad frame"):
        assert len(data.read_frames(plain, "REF_energy", "REF_forces", skip_bad_frames=True)) == 1
    # ... also when the file's last frame is torn, which reads the whole frames apart
    whole = plain.read_text()
    torn = tmp_path / "torn.xyz"
    torn.write_text(whole + whole.split("\n", 1)[0] + "\n")  # a third frame of its count line only
    with pytest.warns(UserWarning, match=r"skipped 2 bad frame\(s\) of 3"):
        assert len(data.read_frames(torn, "REF_energy", "REF_forces", skip_bad_frames=True)) == 1
    # ... and in a compressed file as well
    import gzip

    packed = tmp_path / "plain.xyz.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    with pytest.raises(InputError, match=r"plain.xyz.gz, frame 1: field 'stress' is not symmetric"):
        data.read_frames(packed, "REF_energy", "REF_forces")


def test_a_frame_ase_cannot_parse_is_named(tmp_path):
    # ASE reads the whole file in one call and says nothing of where: the error must name the frame.
    path = tmp_path / "three.xyz"
    ase.io.write(path, [labelled(molecule("H2O"), k) for k in range(3)])
    lines = path.read_text().splitlines(keepends=True)
    lines[6] = lines[6].replace("pbc=", 'stress="1 2 3 4 5 6" pbc=')  # frame 1's comment line: 6 numbers
    path.write_text("".join(lines))
    with pytest.raises(InputError, match=rf"{path}, frame 1: cannot read"):
        data.read_frames(path)
    lines[1] = lines[1].replace("pbc=", 'stress="1 2 3 4 5 6" pbc=')  # and frame 0's: the first frame is named too
    path.write_text("".join(lines))
    with pytest.raises(InputError, match=rf"{path}, frame 0: cannot read"):
        data.read_frames(path)


def _emt_copper(pbc=True, **info):
    """A rattled periodic Cu cell labelled by EMT (energy, forces, stress in eV/Å^3)."""
    from ase.build import bulk
    from ase.calculators.emt import EMT

    atoms = bulk("Cu", cubic=True) * (2, 1, 1)
    atoms.set_cell(atoms.cell * 0.97, scale_atoms=True)  # compressed: ~10 GPa, as strained DFT frames are
    atoms.rattle(0.05, seed=1)
    atoms.calc = EMT()
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces(), "stress": atoms.get_stress()}
    atoms.calc = SinglePointCalculator(atoms, **results)
    atoms.pbc = pbc
    atoms.info.update(info)
    return atoms


def _warnings_of(path, **keys) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reading.read_frames(path, **keys)
    return [str(w.message) for w in caught]


def test_stress_in_other_units_is_flagged(tmp_path):
    # GPa read as eV/Å^3 is 160x too large: warned, naming the frame; real-sized labels are not. (Near
    # zero stress GPa numbers look like eV/Å^3 ones: only large ones, kBar and virials can be caught.)
    plain = _write(tmp_path, [_emt_copper(), _emt_copper()], "ok.xyz")
    assert not any("stress" in message for message in _warnings_of(plain))
    gpa = _emt_copper()
    gpa.calc.results["stress"] = gpa.calc.results["stress"] / 0.00624150907  # eV/Å^3 -> GPa
    path = _write(tmp_path, [_emt_copper(), gpa], "gpa.xyz")
    (message,) = [m for m in _warnings_of(path) if "field 'stress' reaches" in m]
    assert (
        message.startswith(f"{path}, frame 1: field 'stress' reaches") and "if yours are GPa divide by 160.2" in message
    )


def test_a_stress_under_another_name_is_pointed_out(tmp_path):
    # MACE's files name it REF_stress: with the default stress_key the run would train without stress
    frames = []
    for _ in range(2):
        atoms = _emt_copper()
        atoms.info["REF_stress"] = atoms.calc.results.pop("stress")
        frames.append(atoms)
    path = _write(tmp_path, frames, "ref.xyz")
    (message,) = [m for m in _warnings_of(path) if "set stress_key" in m]
    assert f"{path}, frame 0: no stress label 'stress', but field(s) ['REF_stress']" in message
    read = reading.read_frames(path, stress_key="REF_stress")
    assert read[0].stress is not None and not any(
        "set stress_key" in m for m in _warnings_of(path, stress_key="REF_stress")
    )


def test_a_stress_label_on_a_partly_periodic_frame_is_not_used_and_says_so(tmp_path):
    path = _write(tmp_path, [_emt_copper(), _emt_copper(pbc=(True, True, False))], "slab.xyz")
    (message,) = [m for m in _warnings_of(path) if "not periodic in all three directions" in m]
    assert f"(first: {path}, frame 1 (pbc TTF))" in message
    with pytest.warns(UserWarning, match="not periodic in all three directions"):
        frames = reading.read_frames(path)
    assert frames[0].stress is not None and frames[1].stress is None


def test_a_crystal_written_without_pbc_but_with_a_stress_label_says_so(tmp_path):
    # Atoms(..., cell=c) without pbc=True: a bulk cell trained as a cluster, its stress dropped
    path = _write(tmp_path, [_emt_copper(), _emt_copper(pbc=False)], "bulk.xyz")
    (message,) = [m for m in _warnings_of(path) if "not periodic in all three directions" in m]
    assert f"(first: {path}, frame 1 (pbc FFF))" in message and "set pbc to T T T" in message
    molecule_path = _write(tmp_path, molecules(2), "molecules.xyz")  # no stress label: nothing to say
    assert not any("periodic" in m for m in _warnings_of(molecule_path))


@pytest.mark.parametrize("held", ["FixAtoms", "FixCartesian", "FixScaled"])
def test_forces_zeroed_by_a_constraint_are_flagged_naming_the_frame(tmp_path, held):
    from ase.constraints import FixAtoms, FixCartesian, FixScaled

    applied, raw = _emt_copper(), _emt_copper()
    constraint = {
        "FixAtoms": FixAtoms(indices=[0, 1]),
        "FixCartesian": FixCartesian([0, 1], mask=[True, True, False]),  # held in the plane, free along z
        "FixScaled": FixScaled([0, 1], mask=[False, False, True], cell=applied.cell),  # VASP's selective dynamics
    }[held]
    for atoms in (applied, raw):
        atoms.set_constraint(constraint)
    applied.calc.results["forces"] = applied.get_forces()  # with the constraint applied, as users write them
    assert held == "FixAtoms" or np.abs(applied.calc.results["forces"][[0, 1]]).max() > 0.01  # some kept
    # extxyz keeps FixAtoms and FixCartesian (move_mask); FixScaled comes from VASP files, or here a .traj
    path = _write(tmp_path, [raw, applied], "slab.traj" if held == "FixScaled" else "slab.xyz")
    assert ase.io.read(path, 1).constraints, "the file keeps the constraint"
    (message,) = [m for m in _warnings_of(path) if "held by a constraint" in m]
    assert "1 frame(s)" in message and f"(first: {path}, frame 1 (2 atoms))" in message
    assert "apply_constraint=False" in message


def test_a_key_without_a_value_is_not_read_as_an_energy_of_one(tmp_path):
    """A plain-xyz comment "energy -49.65" reaches ASE's extxyz parser as energy=True (a key without
    '='), and T or F as booleans too: numpy would make them 1.0 and 0.0 eV."""
    path = tmp_path / "plain_comment.xyz"
    path.write_text(
        "3\nenergy -49.651544 Properties=species:S:1:pos:R:3:forces:R:3\n"
        + "".join(f"{e} {x} 0 0 0 0 0\n" for e, x in (("O", 0.0), ("H", 0.96), ("H", -0.3)))
    )
    with pytest.raises(
        InputError, match=r"plain_comment.xyz, frame 0: field 'energy' is not a number: True .*write energy=<number>"
    ):
        data.read_frames(path)


def test_a_missing_label_points_at_the_field_that_holds_it(tmp_path):
    atoms = labelled(molecule("H2O"), 0)
    atoms.info["REF_energy"] = atoms.calc.results.pop("energy")
    path = _write(tmp_path, [atoms])
    with pytest.raises(
        InputError,
        match=r"frame 0: missing label 'energy' \(energy\); the frame has \['REF_energy'\]: set energy_key: REF_energy",
    ):
        data.read_frames(path)
    assert data.read_frames(path, energy_key="REF_energy")[0].energy == pytest.approx(atoms.info["REF_energy"])


def test_a_field_named_virial_stress_reads_as_the_stress_it_names(tmp_path):
    """The unread-stress hint and stress_key agree: the hint's key is accepted (it used to be refused as a
    virial, and the refusal's advice, renaming it 'virial', would read a stress as -W/V)."""
    atoms = _emt_copper()
    stress = atoms.calc.results.pop("stress")
    atoms.info["virial_stress"] = stress
    path = _write(tmp_path, [atoms])
    (message,) = [m for m in _warnings_of(path) if "virial_stress" in m]
    assert "set stress_key: virial_stress" in message
    (frame,) = data.read_frames(path, stress_key="virial_stress")
    from ase.stress import voigt_6_to_full_3x3_stress

    np.testing.assert_allclose(frame.stress, voigt_6_to_full_3x3_stress(stress), atol=1e-12)
