"""``mlpot md`` end to end and the ASE-style drivers' in-place updates."""

import csv
import re

import ase.io
import numpy as np
import pytest
from ase import Atoms, units
from ase.constraints import FixAtoms, FixCartesian

import md
import mlpot
from md.io import load_restart
from md.toy import argon_crystal, argon_potential
from mlpot.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("md_cli")
    argon_potential(6.5).save(folder / "argon.mlpot")
    ase.io.write(folder / "argon.xyz", argon_crystal(2, temperature_K=0.0))
    return folder


def _md(files, out, *extra, model=None):
    return main(
        [
            "md",
            str(model or files / "argon.mlpot"),
            str(files / "argon.xyz"),
            "--dt",
            "5",
            "--interval",
            "5",
            "--seed",
            "3",
            "--traj",
            str(out / "t.xyz"),
            "--log",
            str(out / "log.csv"),
            *extra,
        ]
    )


def test_cli_writes_log_and_trajectory_and_restarts_exactly(files, tmp_path):
    a, b = tmp_path / "straight", tmp_path / "split"
    common = ["--ensemble", "langevin", "--temperature", "60", "--friction", "0.02"]
    assert _md(files, a, "--steps", "30", "--restart", str(a / "r.npz"), *common) == 0
    assert _md(files, b, "--steps", "15", "--restart", str(b / "r.npz"), *common) == 0  # killed at 15, say
    assert _md(files, b, "--steps", "30", "--restart", str(b / "r.npz"), *common) == 0  # continues to 30
    assert _md(files, b, "--steps", "30", "--restart", str(b / "r.npz"), *common) == 0  # done: nothing to add
    final_a, final_b = load_restart(a / "r.npz")["state"], load_restart(b / "r.npz")["state"]
    assert int(final_a.step) == int(final_b.step) == 30
    np.testing.assert_allclose(final_b.positions, final_a.positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(final_b.momenta, final_a.momenta, rtol=0, atol=1e-10)

    rows = list(csv.DictReader((b / "log.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == list(range(0, 31, 5))  # appended, header once
    assert set(rows[0]) == {"step", "time_fs", "epot_eV", "ekin_eV", "etot_eV", "temperature_K"}
    assert float(rows[-1]["time_fs"]) == pytest.approx(150.0)
    frames = ase.io.read(b / "t.xyz", ":")
    assert [f.info["step"] for f in frames] == list(range(0, 31, 5))
    last = frames[-1]
    assert last.get_potential_energy() == pytest.approx(float(rows[-1]["epot_eV"]), abs=1e-6)
    assert np.all(last.get_scaled_positions(wrap=False) >= -1e-9) and np.all(last.get_scaled_positions() < 1)
    assert last.get_forces().shape == (32, 3)


def test_cli_unwrap_writes_positions_as_integrated(files, tmp_path):
    """Wrapped frames (the default, for viewing) jump by a cell vector when an atom crosses a face; a
    mean-squared displacement needs --unwrap, the state's own positions."""
    common = ["--steps", "30", "--ensemble", "langevin", "--temperature", "60"]
    assert _md(files, tmp_path, *common, "--unwrap", "--restart", str(tmp_path / "r.npz")) == 0
    state = load_restart(tmp_path / "r.npz")["state"]
    last = ase.io.read(tmp_path / "t.xyz", -1)
    np.testing.assert_allclose(last.positions, state.positions, atol=1e-8)
    outside = (last.get_scaled_positions(wrap=False) < 0) | (last.get_scaled_positions(wrap=False) >= 1)
    assert outside.any()  # atoms on the cell's faces at the start: some left it, and were not put back
    wrapped = tmp_path / "wrapped"
    assert _md(files, wrapped, *common) == 0
    frame = ase.io.read(wrapped / "t.xyz", -1)
    np.testing.assert_allclose(frame.get_scaled_positions(wrap=False), last.get_scaled_positions(), atol=1e-8)


def test_cli_keep_momenta_continues_a_trajectory_frame_under_a_thermostat(files, tmp_path, capsys):
    """A new run from a trajectory's last frame keeps its momenta with --keep-momenta, while
    --temperature stays the thermostat's target (before, only --temperature 0 kept them, and
    Nosé-Hoover refuses a 0 K target)."""
    assert _md(files, tmp_path / "first", "--steps", "20", "--ensemble", "langevin", "--temperature", "60") == 0
    last = ase.io.read(tmp_path / "first" / "t.xyz", -1)
    assert np.abs(last.get_momenta()).max() > 0
    base = ["md", str(files / "argon.mlpot"), str(tmp_path / "first" / "t.xyz"), "--index", "-1", "--steps", "5"]
    out = tmp_path / "second" / "t.xyz"
    nose_hoover = ["--ensemble", "nose-hoover", "--temperature", "60", "--dt", "5", "--interval", "5"]
    assert main([*base, *nose_hoover, "--keep-momenta", "--traj", str(out)]) == 0
    np.testing.assert_allclose(ase.io.read(out, 0).get_momenta(), last.get_momenta(), atol=1e-10)
    assert main([*base, *nose_hoover, "--traj", str(out), "--overwrite"]) == 0  # without it: drawn afresh
    assert np.abs(ase.io.read(out, 0).get_momenta() - last.get_momenta()).max() > 1e-3
    capsys.readouterr()
    assert main([*base[:3], "--index=-40", *base[5:], *nose_hoover, "--traj", str(out), "--overwrite"]) == 2
    assert f"{tmp_path / 'first' / 't.xyz'}: has no frame -40" in capsys.readouterr().err  # not frame 0
    # ASE's extxyz reader ends a file at a blank line: -1 was the last frame before it
    joined = tmp_path / "joined.xyz"
    text = (tmp_path / "first" / "t.xyz").read_text()
    joined.write_text(text + "\n" + text)
    assert main([*base[:2], str(joined), *base[3:], "--traj", str(tmp_path / "j.xyz")]) == 2
    assert f"{joined}, line {len(text.splitlines()) + 1}: a blank line before frame" in capsys.readouterr().err
    assert _md(files, tmp_path / "third", "--steps", "5", "--ensemble", "nose-hoover", "--keep-momenta") == 2
    err = capsys.readouterr().err
    assert f"--keep-momenta: {files / 'argon.xyz'}, frame 0 has no momenta (all zero)" in err


def test_cli_npt_logs_pressure_and_volume(files, tmp_path):
    assert (
        _md(
            files,
            tmp_path,
            "--steps",
            "10",
            "--ensemble",
            "npt",
            "--temperature",
            "60",
            "--pressure",
            "0.5",
            "--taup",
            "200",
            "--compressibility",
            "0.3",
        )
        == 0
    )
    rows = list(csv.DictReader((tmp_path / "log.csv").read_text().splitlines()))
    assert float(rows[-1]["volume_A3"]) != float(rows[0]["volume_A3"])
    _assert_logged_pressure(rows[-1], ase.io.read(tmp_path / "t.xyz", -1))


def _assert_logged_pressure(row: dict, frame) -> None:
    """The log's pressure and volume are ASE's for the trajectory frame of the same step: the
    virial from the frame's stored stress plus the ideal-gas term from its momenta, in GPa."""
    assert frame.info["step"] == int(row["step"])
    assert float(row["volume_A3"]) == pytest.approx(frame.get_volume(), rel=1e-8)
    stress = frame.get_stress(voigt=False, include_ideal_gas=True)
    assert float(row["pressure_GPa"]) == pytest.approx(-np.trace(stress) / 3 / units.GPa, rel=1e-5, abs=1e-7)
    assert abs(float(row["pressure_GPa"])) > 1e-4  # a number, not a zero column


def test_cli_reports_a_blow_up_as_one_line_and_exit_code(files, tmp_path, capsys):
    code = _md(files, tmp_path, "--steps", "50", "--temperature", "60", "--min-distance", "3.6", "--interval", "10")
    assert code == 1
    err = capsys.readouterr().err
    assert "MD stopped at step" in err and "closer than 3.6" in err
    # the frame before the failure ends trajectory and log, off the 10-step interval: the one to look at
    failed = int(re.search(r"MD stopped at step (\d+)", err).group(1))
    assert failed % 10 != 1, "pick a case that fails between two written frames"
    frames = ase.io.read(tmp_path / "t.xyz", ":")
    assert frames[-1].info["step"] == failed - 1 and f"step {failed - 1}, ends the trajectory and log" in err
    rows = list(csv.DictReader((tmp_path / "log.csv").read_text().splitlines()))
    assert int(rows[-1]["step"]) == failed - 1
    assert float(rows[-1]["epot_eV"]) == pytest.approx(frames[-1].get_potential_energy(), abs=1e-8)


def test_cli_rejects_bad_input_with_a_clear_message(files, tmp_path, capsys):
    code = main(["md", str(files / "argon.mlpot"), str(tmp_path / "missing.xyz"), "--steps", "5"])
    assert code == 2 and "missing.xyz" in capsys.readouterr().err
    code = main(["md", str(files / "argon.mlpot"), str(files / "argon.xyz"), "--steps", "5", "--index", "3"])
    assert code == 2 and "argon.xyz: has no frame 3" in capsys.readouterr().err
    (tmp_path / "start.unknownext").write_text("not a structure")
    code = main(["md", str(files / "argon.mlpot"), str(tmp_path / "start.unknownext"), "--steps", "5"])
    assert code == 2 and "start.unknownext" in capsys.readouterr().err
    lines = (files / "argon.xyz").read_text().splitlines()
    lines[3] = lines[3].replace(".", ".0.", 1)  # a broken number in frame 0's second atom
    (tmp_path / "broken.xyz").write_text("\n".join(lines) + "\n")
    code = main(["md", str(files / "argon.mlpot"), str(tmp_path / "broken.xyz"), "--steps", "5"])
    assert code == 2 and f"{tmp_path / 'broken.xyz'}, frame 0: cannot be read (ValueError" in capsys.readouterr().err
    code = main(
        [
            "md",
            str(files / "argon.mlpot"),
            str(files / "argon.xyz"),
            "--steps",
            "5",
            "--ensemble",
            "nose-hoover",
            "--temperature",
            "0",
        ]
    )
    assert code == 2 and "above 0 K" in capsys.readouterr().err
    squeezed = argon_crystal(2, lattice=2.0, temperature_K=0.0)  # atoms 1.4 Å apart: refused at the start
    ase.io.write(tmp_path / "squeezed.xyz", squeezed)
    code = main(
        ["md", str(files / "argon.mlpot"), str(tmp_path / "squeezed.xyz"), "--steps", "5", "--min-distance", "2"]
    )
    assert code == 1 and f"{tmp_path / 'squeezed.xyz'}, frame 0: MD cannot start" in capsys.readouterr().err
    # refusals from below the CLI name the file and frame too
    slab = argon_crystal(2, temperature_K=0.0)
    slab.pbc = (True, True, False)
    ase.io.write(tmp_path / "slab.xyz", slab)
    code = main(["md", str(files / "argon.mlpot"), str(tmp_path / "slab.xyz"), "--steps", "5", "--ensemble", "npt"])
    err = capsys.readouterr().err
    assert code == 2 and f"{tmp_path / 'slab.xyz'}, frame 0: stress (NPT) needs a cell periodic" in err
    assert "pbc TTF" in err


def test_cli_restart_refuses_other_settings(files, tmp_path, capsys):
    common = ["--ensemble", "langevin", "--temperature", "60", "--restart", str(tmp_path / "r.npz")]
    assert _md(files, tmp_path, "--steps", "5", *common) == 0
    code = main(["md", str(files / "argon.mlpot"), str(files / "argon.xyz"), "--steps", "10", "--dt", "2", *common])
    assert code == 2 and "--dt 5 -> 2 fs" in capsys.readouterr().err  # time_fs would be wrong from here on
    code = _md(files, tmp_path, "--steps", "10", "--skin", "0.3", *common)
    assert code == 2 and "had --skin 0.5 Å, not 0.3" in capsys.readouterr().err


def test_cli_notes_options_the_ensemble_ignores_and_a_restart_does_not_compare_them(files, tmp_path, capsys):
    common = ["--ensemble", "nose-hoover", "--temperature", "60", "--restart", str(tmp_path / "r.npz")]
    assert _md(files, tmp_path, "--steps", "5", "--pressure", "5", "--friction", "3", *common) == 0
    err = capsys.readouterr().err
    assert "note: --pressure 5 and --friction 3 are not used by --ensemble nose-hoover: ignored" in err
    assert _md(files, tmp_path, "--steps", "10", *common) == 0  # the same run: those never acted
    assert "note:" not in capsys.readouterr().err
    code = _md(files, tmp_path, "--steps", "15", "--tdamp", "300", *common)  # one the ensemble reads
    assert code == 2 and "--tdamp 500 -> 300 fs" in capsys.readouterr().err
    # the log has the conserved energy, which starts as etot (the chain at rest)
    rows = list(csv.DictReader((tmp_path / "log.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == [0, 5, 10]
    assert float(rows[0]["conserved_eV"]) == pytest.approx(float(rows[0]["etot_eV"]), abs=1e-9)


def test_cli_restart_refuses_another_model(files, tmp_path, capsys):
    other = tmp_path / "other.mlpot"
    argon_potential(6.0).save(other)  # same element, other energies
    common = ["--ensemble", "langevin", "--temperature", "60", "--restart", str(tmp_path / "r.npz")]
    assert _md(files, tmp_path, "--steps", "5", *common) == 0
    assert _md(files, tmp_path, "--steps", "10", *common, model=other) == 2
    err = capsys.readouterr().err
    assert "argon.mlpot" in err and "other.mlpot" in err
    assert int(load_restart(tmp_path / "r.npz")["state"].step) == 5  # nothing was run with the other model


def test_cli_restart_refuses_a_changed_start_structure(files, tmp_path, capsys):
    # the state comes from the restart, but pbc, masses and constraints from the file: pbc off mid-run
    # turned the crystal into a cluster without a word
    start = tmp_path / "start.xyz"
    atoms = ase.io.read(files / "argon.xyz")
    ase.io.write(start, atoms)
    common = ["--ensemble", "langevin", "--temperature", "60", "--restart", str(tmp_path / "r.npz")]
    run = ["md", str(files / "argon.mlpot"), str(start), "--dt", "5", "--interval", "5", *common]
    assert main([*run, "--steps", "5"]) == 0
    assert main([*run, "--steps", "10"]) == 0  # the same file: continues
    atoms.pbc = False
    ase.io.write(start, atoms)
    assert main([*run, "--steps", "15"]) == 2
    assert f"started from {start}, and {start} is not that structure now" in capsys.readouterr().err
    assert int(load_restart(tmp_path / "r.npz")["state"].step) == 10  # nothing was run from it


def test_cli_refuses_a_duplicated_atom_even_without_a_distance_check(files, tmp_path, capsys):
    # to the model a zero-length pair is padding: no wall, and a first log line of -5e6 eV
    atoms = ase.io.read(files / "argon.xyz")
    atoms += atoms[:1]
    ase.io.write(tmp_path / "dup.xyz", atoms)
    argv = ["md", str(files / "argon.mlpot"), str(tmp_path / "dup.xyz"), "--steps", "5", "--min-distance", "0"]
    assert main([*argv, "--log", str(tmp_path / "log.csv")]) == 2
    assert f"dup.xyz, frame 0: MD neighbour list (build 1): atoms 0 and {len(atoms) - 1} are on top of each other" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "log.csv").exists()


def test_cli_continues_a_restart_file_written_before_model_fingerprints(files, tmp_path, capsys):
    common = ["--ensemble", "langevin", "--temperature", "60", "--restart", str(tmp_path / "r.npz")]
    assert _md(files, tmp_path, "--steps", "5", *common) == 0
    with np.load(tmp_path / "r.npz") as data:
        old = {k: data[k] for k in data.files if not k.startswith("model_")}
    np.savez(tmp_path / "r.npz", **old)
    assert _md(files, tmp_path, "--steps", "10", *common) == 0
    assert "cannot check" in capsys.readouterr().err
    assert int(load_restart(tmp_path / "r.npz")["state"].step) == 10


def test_cli_refuses_to_overwrite_the_output_of_another_run(files, tmp_path, capsys):
    assert _md(files, tmp_path, "--steps", "10") == 0
    for extra in ([], ["--restart", str(tmp_path / "new.npz")]):  # a restart file that does not exist yet
        assert _md(files, tmp_path, "--steps", "5", *extra) == 2
        err = capsys.readouterr().err
        assert "t.xyz" in err and "--restart FILE" in err and "--overwrite" in err
    assert len(ase.io.read(tmp_path / "t.xyz", ":")) == 3  # untouched
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 4
    assert _md(files, tmp_path, "--steps", "5", "--overwrite") == 0
    assert [f.info["step"] for f in ase.io.read(tmp_path / "t.xyz", ":")] == [0, 5]


def test_cli_rejects_directories_and_unusable_output_paths_before_running(files, tmp_path, capsys):
    model, start, ok = str(files / "argon.mlpot"), str(files / "argon.xyz"), str(tmp_path / "ok.xyz")
    (tmp_path / "afile").write_text("")
    cases = [  # (arguments after MODEL, the path the message must name)
        ([str(tmp_path), "--traj", ok], str(tmp_path)),
        ([start, "--log", str(tmp_path), "--traj", ok], str(tmp_path)),
        ([start, "--traj", str(tmp_path)], str(tmp_path)),
        ([start, "--restart", str(tmp_path), "--traj", ok], str(tmp_path)),
        ([start, "--log", str(tmp_path / "afile" / "x.csv"), "--traj", ok], str(tmp_path / "afile")),
        ([start, "--log", ok, "--traj", ok], ok),
        # an output over an input would destroy it, --overwrite or not
        ([start, "--log", start, "--overwrite"], f"--log {start} is the STRUCTURE file"),
        ([start, "--traj", model, "--overwrite"], f"--traj {model} is the MODEL file"),
        # extxyz text under a name other programs read as their own format
        ([start, "--traj", str(tmp_path / "out.pdb")], "out.pdb: the trajectory is written as ASE's .traj or"),
        ([start, "--log", "-", "--traj", ok], "--log -: give the thermo CSV a file name"),  # made a file "-"
    ]
    for argv, named in cases:
        assert main(["md", model, *argv, "--steps", "5"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("mlpot md: error:") and named in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]  # refused before any MD started


def test_cli_rejects_unphysical_settings(files, capsys):
    for option, value in [
        ("--temperature", "-300"),
        ("--friction", "-0.01"),
        ("--tdamp", "0"),
        ("--taup", "-5"),
        ("--compressibility", "-0.01"),
        ("--skin", "0"),
        ("--min-distance", "-1"),
        ("--max-temperature", "0"),
        ("--temperature", "nan"),
        ("--pressure", "nan"),
        ("--pressure", "inf"),
        ("--temperature", "inf"),
        ("--skin", "inf"),
        ("--min-distance", "inf"),
        ("--compressibility", "inf"),
        ("--seed", "-1"),  # an option, not an error in the structure file
        ("--seed", str(2**63)),  # an OverflowError traceback from jax.random.PRNGKey
        ("--seed", str(2**64)),  # a TypeError from np.isfinite
    ]:
        argv = ["md", str(files / "argon.mlpot"), str(files / "argon.xyz"), "--steps", "5", option, value]
        assert main(argv) == 2, option
        err = capsys.readouterr().err
        assert f"{option} {value}" in err and "frame 0" not in err


def test_cli_refuses_time_constants_typed_in_ps_and_a_barostat_that_cannot_move(files, capsys):
    start = ["md", str(files / "argon.mlpot"), str(files / "argon.xyz"), "--steps", "5", "--dt", "5"]
    for extra, message in [
        (["--ensemble", "nose-hoover", "--tdamp", "0.1"], "--tdamp 0.1 fs under ten timesteps (50 fs at --dt 5)"),
        (["--ensemble", "npt-mtk", "--taup", "1"], "--taup 1 fs under ten timesteps"),
        (["--ensemble", "npt", "--tdamp", "0.1"], "--tdamp 0.1 fs under ten timesteps"),  # Berendsen's taut
        (["--skin", "1e6"], "skin 1e+06 Å: give one above 0 and at most the cutoff (6.5 Å)"),  # ran away
        (["--ensemble", "npt", "--compressibility", "0"], "the Berendsen barostat would never move the cell"),
    ]:
        assert main(start + extra) == 2, extra
        assert message in capsys.readouterr().err
    # Langevin's friction over-damps but runs: a note, not a refusal; tdamp is not a Langevin setting
    assert main(start + ["--ensemble", "langevin", "--friction", "10", "--tdamp", "0.1", "--steps", "2"]) == 0
    assert "an over-damped run; friction is in 1/fs" in capsys.readouterr().err


def test_a_single_atom_starts_at_rest(files, tmp_path):
    """Zero net momentum leaves one free atom no velocity at all (ASE's Stationary gave it NaN or a random T)."""
    ase.io.write(tmp_path / "one.xyz", Atoms("Ar", positions=[[0.1, 0.2, 0.3]], cell=[5.0] * 3, pbc=True))
    for seed in ("0", "1"):
        log = tmp_path / f"log{seed}.csv"
        argv = ["md", str(files / "argon.mlpot"), str(tmp_path / "one.xyz"), "--steps", "2", "--interval", "1"]
        assert main([*argv, "--temperature", "300", "--seed", seed, "--log", str(log)]) == 0
        rows = list(csv.DictReader(log.read_text().splitlines()))
        assert [float(r["temperature_K"]) for r in rows] == [0.0, 0.0, 0.0]


def test_a_run_killed_between_a_frame_and_its_restart_file_resumes_without_duplicates(files, tmp_path):
    common = ["--ensemble", "langevin", "--temperature", "60", "--restart", str(tmp_path / "r.npz")]
    assert _md(files, tmp_path, "--steps", "10", *common) == 0
    at_10 = (tmp_path / "r.npz").read_bytes()
    assert _md(files, tmp_path, "--steps", "15", *common) == 0
    (tmp_path / "r.npz").write_bytes(at_10)  # frame and log line of step 15 written, its restart not
    assert _md(files, tmp_path, "--steps", "20", *common) == 0
    rows = list(csv.DictReader((tmp_path / "log.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == [0, 5, 10, 15, 20]
    assert [f.info["step"] for f in ase.io.read(tmp_path / "t.xyz", ":")] == [0, 5, 10, 15, 20]


def test_restart_writes_are_throttled_by_restart_seconds_but_the_end_is_always_written(files, tmp_path, monkeypatch):
    import md.io

    written = []
    save = md.io.save_restart
    monkeypatch.setattr(
        md.io,
        "save_restart",
        lambda path, ensemble, state, *rest: (written.append(int(state.step)), save(path, ensemble, state, *rest))[1],
    )
    common = ["--ensemble", "langevin", "--temperature", "60", "--steps", "23"]
    a, b = tmp_path / "every", tmp_path / "throttled"
    assert _md(files, a, *common, "--restart", str(a / "r.npz"), "--restart-seconds", "0") == 0
    assert written == [0, 5, 10, 15, 20, 23]
    written.clear()
    assert _md(files, b, *common, "--restart", str(b / "r.npz"), "--restart-seconds", "1e6") == 0
    assert written == [0, 23]  # the first write, then only the end
    state_a, state_b = load_restart(a / "r.npz")["state"], load_restart(b / "r.npz")["state"]
    np.testing.assert_array_equal(state_b.positions, state_a.positions)
    rows = list(csv.DictReader((b / "log.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == [0, 5, 10, 15, 20, 23]  # frames and lines are not throttled


def test_restart_seconds_must_be_non_negative(files, tmp_path, capsys):
    assert _md(files, tmp_path, "--steps", "5", "--restart-seconds", "-1") == 2
    assert "--restart-seconds -1 (must be >= 0 s)" in capsys.readouterr().err


def test_driver_updates_atoms_in_place_before_callbacks_without_recomputing():
    atoms = argon_crystal(2, temperature_K=60.0, seed=8)
    calc = mlpot.Calculator(argon_potential(6.5))
    atoms.calc = calc
    dyn = md.Langevin(atoms, 5 * units.fs, temperature_K=60.0, friction=0.02 / units.fs, seed=1)
    calls, calculate = [], calc.calculate
    calc.calculate = lambda *args, **kwargs: (calls.append(1), calculate(*args, **kwargs))[1]
    seen = []
    dyn.attach(lambda: seen.append((dyn.nsteps, atoms.get_potential_energy(), atoms.positions.copy())), 4)
    dyn.run(12)
    assert [s[0] for s in seen] == [0, 4, 8, 12]
    assert not calls  # energies came from the MD state, not a new calculation
    assert not np.allclose(seen[1][2], seen[2][2])
    np.testing.assert_allclose(atoms.positions, np.asarray(dyn.simulation.state.positions))
    fresh = mlpot.Calculator(argon_potential(6.5))
    assert fresh.get_potential_energy(atoms) == pytest.approx(seen[-1][1], abs=1e-9)


def test_driver_with_explicit_potential_gives_callbacks_an_energy():
    """md.VelocityVerlet(atoms, dt, potential=...) on bare atoms: callbacks can read energies, as in ASE."""
    from ase import units

    import md
    from md.toy import argon_crystal, argon_potential

    atoms = argon_crystal(repeat=2)
    atoms.calc = None
    energies = []
    dyn = md.VelocityVerlet(atoms, 2.0 * units.fs, potential=argon_potential())
    dyn.attach(lambda: energies.append(atoms.get_total_energy()), interval=5)
    dyn.run(20)
    assert len(energies) >= 4 and all(abs(e - energies[0]) < 1e-3 * len(atoms) for e in energies)


def test_cli_holds_atoms_an_extxyz_move_mask_fixes_and_counts_only_the_free_coordinates(files, tmp_path, capsys):
    # extxyz's move_mask reads back as one FixCartesian per atom: atoms 0-3 held, atom 4 held in z only.
    atoms = ase.io.read(files / "argon.xyz")
    atoms.set_constraint([FixAtoms(indices=[0, 1, 2, 3]), FixCartesian(4, mask=(False, False, True))])
    held = tmp_path / "held"
    held.mkdir()
    ase.io.write(held / "argon.xyz", atoms)
    out = tmp_path / "run"
    common = ["--ensemble", "nose-hoover", "--temperature", "60", "--tdamp", "100"]
    restart = str(out / "r.npz")
    assert _md(held, out, "--steps", "30", "--restart", restart, *common, model=files / "argon.mlpot") == 0
    free = 3 * len(atoms) - 13
    assert f"temperatures count {free} degrees of freedom (13 coordinates held by FixAtoms/FixCartesian)" in (
        capsys.readouterr().err
    )
    frames = ase.io.read(out / "t.xyz", ":")
    first, last = frames[0], frames[-1]
    np.testing.assert_array_equal(last.positions[:4], first.positions[:4])
    assert last.positions[4, 2] == first.positions[4, 2] and last.positions[4, 0] != first.positions[4, 0]
    assert np.abs(last.positions[5:] - first.positions[5:]).max() > 1e-3  # the others move
    for row in csv.DictReader((out / "log.csv").read_text().splitlines()):
        assert float(row["temperature_K"]) == pytest.approx(2 * float(row["ekin_eV"]) / (free * units.kB), rel=1e-6)
    mobile = load_restart(restart)["state"].mobile  # a continuation holds the same coordinates
    assert mobile[:4].sum() == 0 and list(mobile[4]) == [1, 1, 0] and mobile[5:].all()


def test_drivers_hold_fixed_atoms_as_ases_velocity_verlet_does_and_refuse_other_constraints():
    from ase.constraints import FixBondLength
    from ase.md.verlet import VelocityVerlet as AseVelocityVerlet

    potential = argon_potential(6.5)
    start = argon_crystal(repeat=2, temperature_K=60.0, seed=4)
    start.set_constraint([FixAtoms(indices=[0, 1]), FixCartesian(2, mask=(True, False, True))])
    ours, theirs = start.copy(), start.copy()
    ours.calc, theirs.calc = mlpot.Calculator(potential), mlpot.Calculator(potential)
    md.VelocityVerlet(ours, 2.0 * units.fs).run(40)
    AseVelocityVerlet(theirs, 2.0 * units.fs).run(40)
    np.testing.assert_allclose(ours.positions, theirs.positions, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.get_momenta(), theirs.get_momenta(), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ours.positions[:2], start.positions[:2])
    assert ours.positions[2, 1] != start.positions[2, 1]  # free along y only
    np.testing.assert_array_equal(ours.positions[2, [0, 2]], start.positions[2, [0, 2]])

    other = argon_crystal(repeat=2)
    other.set_constraint(FixBondLength(0, 1))
    with pytest.raises(ValueError, match=r"constraints \['FixBondLengths'\].*applies FixAtoms and FixCartesian"):
        md.VelocityVerlet(other, 2.0 * units.fs, potential=potential)


def test_cli_writes_the_last_frame_off_the_interval_and_a_nose_hoover_restart_keeps_its_count(files, tmp_path, capsys):
    # --interval 5: a 12-step run ends with step 12 in the trajectory and log, not only in the restart.
    # The split run continues with the degrees of freedom it started with (3N - 3 = 93: the thermostat
    # holds the zero net momentum), so it lands where the straight run does.
    a, b = tmp_path / "straight", tmp_path / "split"
    common = ["--ensemble", "nose-hoover", "--temperature", "60", "--tdamp", "100"]
    assert _md(files, a, "--steps", "24", "--restart", str(a / "r.npz"), *common) == 0
    assert "temperatures count 93 degrees of freedom (net momentum held at zero)" in capsys.readouterr().err
    assert _md(files, b, "--steps", "12", "--restart", str(b / "r.npz"), *common) == 0
    assert [f.info["step"] for f in ase.io.read(b / "t.xyz", ":")] == [0, 5, 10, 12]
    assert _md(files, b, "--steps", "24", "--restart", str(b / "r.npz"), *common) == 0
    assert _md(files, b, "--steps", "24", "--restart", str(b / "r.npz"), *common) == 0  # done: nothing added
    assert [f.info["step"] for f in ase.io.read(b / "t.xyz", ":")] == [0, 5, 10, 12, 15, 20, 24]
    rows = list(csv.DictReader((b / "log.csv").read_text().splitlines()))
    assert [int(r["step"]) for r in rows] == [0, 5, 10, 12, 15, 20, 24]
    for row in rows:  # the log's temperature counts the 93
        assert float(row["temperature_K"]) == pytest.approx(2 * float(row["ekin_eV"]) / (93 * units.kB), rel=1e-6)
    assert float(load_restart(b / "r.npz")["params"].dof) == 93
    final_a, final_b = load_restart(a / "r.npz")["state"], load_restart(b / "r.npz")["state"]
    np.testing.assert_allclose(final_b.positions, final_a.positions, rtol=0, atol=1e-10)
    np.testing.assert_allclose(final_b.chain_momenta, final_a.chain_momenta, rtol=0, atol=1e-12)


@pytest.mark.parametrize("ensemble", ["npt-mtk", "npt-mtk-cell"])
def test_cli_mtk_npt_logs_pressure_and_restarts_exactly(files, tmp_path, ensemble):
    # The barostat's state (the cell's momentum and its chain) travels in the restart file: the split
    # run lands where the straight one does, cell included.
    a, b = tmp_path / "straight", tmp_path / "split"
    common = ["--ensemble", ensemble, "--temperature", "60", "--pressure", "0.05", "--taup", "500"]
    assert _md(files, a, "--steps", "20", "--restart", str(a / "r.npz"), *common) == 0
    assert _md(files, b, "--steps", "10", "--restart", str(b / "r.npz"), *common) == 0
    assert _md(files, b, "--steps", "20", "--restart", str(b / "r.npz"), *common) == 0
    final_a, final_b = load_restart(a / "r.npz")["state"], load_restart(b / "r.npz")["state"]
    assert np.abs(final_a.cell_momentum).max() > 0
    for field in ("positions", "momenta", "cell", "cell_momentum", "cell_chain_momenta", "chain_momenta"):
        np.testing.assert_allclose(getattr(final_b, field), getattr(final_a, field), rtol=0, atol=1e-12)
    rows = list(csv.DictReader((b / "log.csv").read_text().splitlines()))
    assert float(rows[-1]["volume_A3"]) != float(rows[0]["volume_A3"])
    _assert_logged_pressure(rows[-1], ase.io.read(b / "t.xyz", -1))
