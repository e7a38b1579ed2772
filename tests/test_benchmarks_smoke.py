"""The benchmark's shared systems are what benchmarks/structures.py says they are.

Cheap (no model, no MD): sizes, composition, density and periodicity of the
systems every engine is timed on, so a silent change to them cannot make
two benchmark runs incomparable.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import structures


@pytest.mark.parametrize("num_atoms", structures.SIZES["cu"])
def test_copper_is_fcc_at_the_stated_size_and_density(num_atoms):
    atoms = structures.copper(num_atoms)
    assert len(atoms) == num_atoms
    assert set(atoms.numbers) == {29}
    assert atoms.pbc.all()
    # fcc: 4 atoms per cubic cell of side a
    assert atoms.get_volume() / num_atoms == pytest.approx(structures.CU_LATTICE**3 / 4)
    rattle = atoms.positions - structures.copper(num_atoms, rattle=0.0).positions
    assert 0.005 < np.std(rattle) < 0.05  # rattled, but only slightly


def test_copper_rattle_is_reproducible_and_seeded():
    assert np.array_equal(structures.copper(108).positions, structures.copper(108).positions)
    assert not np.array_equal(structures.copper(108, seed=1).positions, structures.copper(108).positions)


def test_water_replicas_keep_composition_and_density():
    # Skip only where no data folder exists at all: a renamed data file must fail, not skip.
    if not any(folder.is_dir() for folder in structures.data_folders()):
        pytest.skip("no shared data folder beside this clone")
    small = structures.water(192)
    for num_atoms in structures.SIZES["water"]:
        atoms = structures.water(num_atoms)
        assert len(atoms) == num_atoms
        assert np.sum(atoms.numbers == 1) == 2 * np.sum(atoms.numbers == 8)
        assert atoms.get_volume() / num_atoms == pytest.approx(small.get_volume() / 192)
        assert atoms.calc is None  # no DFT labels ride along into the benchmark


def test_cases_quick_keeps_the_smallest_of_each_system_and_unknown_sizes_are_refused():
    assert structures.cases(quick=True) == [("water", 192), ("cu", 108)]
    assert len(structures.cases()) == 6
    assert all(n <= 5000 for _, n in structures.cases(max_atoms=5000))
    with pytest.raises(ValueError, match="water comes in"):
        structures.water(100)
    with pytest.raises(ValueError, match="unknown system"):
        structures.build("argon", 108)


def test_time_to_accuracy_reads_the_best_so_far_curve_at_the_marks():
    # The verdicts "MAE at 5/10/20 min" and "time to apax's final MAE" are read off a stamped
    # curve; a worse later epoch must not count and a mark past the budget must stay empty.
    import time_to_accuracy as tta

    curve = [(30, 0.20), (200, 0.05), (400, 0.07), (700, 0.03), (1300, 0.02)]
    record = {
        "frames": 100,
        "curve": [{"time_s": t, "epoch": i, "valid_forces_mae": m} for i, (t, m) in enumerate(curve)],
    }
    tta.summarise(record, minutes=20)
    assert record["best_curve"] == [0.20, 0.05, 0.05, 0.03, 0.02]
    assert record["valid_forces_mae_at"] == {"5min": 0.05, "10min": 0.05, "20min": 0.03}  # 1,300 s is past 20 min
    assert record["frames_per_s"] == pytest.approx(100 * 4 / (1300 - 30))
    assert tta.time_to_reach(record, 0.06) == 200
    assert tta.time_to_reach(record, 0.04) == 700
    assert tta.time_to_reach(record, 0.01) is None
    tta.summarise(short := {"frames": 1, "curve": record["curve"][:2]}, minutes=5)
    assert short["valid_forces_mae_at"]["10min"] is None


def test_nve_check_starts_at_the_asked_temperature_over_the_moving_degrees_of_freedom(tmp_path, monkeypatch):
    # ASE's get_temperature divides by 3N: a molecule drawn at 500 K, without net momentum and spin,
    # read 352 K over 3N (452 K over the 3N - 6 that move) and was reported as a 500 K run.
    import importlib.util
    import json

    import ase.io
    from ase.build import molecule

    from mlpot import ModelConfig, Potential

    path = Path(__file__).resolve().parent.parent / "examples" / "benchmarks" / "nve_check.py"
    spec = importlib.util.spec_from_file_location("nve_check", path)
    nve_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nve_check)
    config = ModelConfig("lennard_jones", 6.0, (18,), {"sigma": 3.4, "epsilon": 0.0104}, dtype="float64")
    Potential.create(config).save(tmp_path / "lj.mlpot")
    cluster = molecule("CH4")
    cluster.numbers[:] = 18
    cluster.positions *= 3.8 / 1.09  # argon at about the LJ bond length
    ase.io.write(tmp_path / "ar5.xyz", cluster)
    out = tmp_path / "nve.json"
    argv = ["nve_check", str(tmp_path / "lj.mlpot"), str(tmp_path / "ar5.xyz"), "--ps", "0.0005", "--every", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--temperature", "40", "--json", str(out)])
    nve_check.main()
    result = json.loads(out.read_text())
    assert result["degrees_of_freedom"] == 3 * 5 - 6 and result["ps_done"] == pytest.approx(0.0005)
    assert result["mean_temperature_K"] == pytest.approx(40.0, rel=0.02)  # one step from the start
