"""The .mlpot file: round trip, corruption, version, no code execution."""

import numpy as np
import pytest
from conftest import ethanol, small_painn

import mlpot
from mlpot.modelfile import MAGIC, ModelFileError


def test_round_trip_gives_identical_predictions(tmp_path):
    potential = small_painn((1, 6, 8), dtype="float32", seed=5)
    path = tmp_path / "model.mlpot"
    potential.save(path)
    loaded = mlpot.load(path)
    assert loaded.config == potential.config
    a, b = potential.predict(ethanol()), loaded.predict(ethanol())
    assert float(a.energy[0]) == float(b.energy[0])
    np.testing.assert_array_equal(np.asarray(a.forces), np.asarray(b.forces))


def test_truncated_file_raises_clear_error(tmp_path):
    path = tmp_path / "model.mlpot"
    small_painn((1, 6, 8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        mlpot.load(path)


def test_not_a_model_file(tmp_path):
    path = tmp_path / "model.mlpot"
    path.write_bytes(b"\x80\x04 pickle-like bytes")
    with pytest.raises(ModelFileError, match="not an mlpot model file"):
        mlpot.load(path)
    with pytest.raises(FileNotFoundError):
        mlpot.load(tmp_path / "missing.mlpot")


def rewrite_version(path, version):
    rewrite(path, format_version=version)


def rewrite(path, **fields):
    """The file with these payload fields replaced, under a valid checksum (a file another tool wrote)."""
    import hashlib

    import msgpack

    payload = msgpack.unpackb(path.read_bytes()[len(MAGIC) + 32 :], raw=False)
    payload.update(fields)
    packed = msgpack.packb(payload, use_bin_type=True)
    path.write_bytes(MAGIC + hashlib.sha256(packed).digest() + packed)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"format_version": "2"}, "format_version must be a whole number, got '2'"),
        ({"params": [1, 2]}, "'params' must be a mapping, got list"),
        ({"config": None}, "'config' must be a mapping, got NoneType"),
        ({"params": {"a/b": [1]}}, "incompatible model config or parameters"),
    ],
)
def test_a_checksummed_file_of_the_wrong_shape_is_named(tmp_path, fields, message):
    # These raised TypeError/AttributeError from inside the loader, without the file's name.
    path = tmp_path / "model.mlpot"
    small_painn((1, 6, 8)).save(path)
    rewrite(path, **fields)
    with pytest.raises(ModelFileError, match=f"{path}: {message}"):
        mlpot.load(path)


@pytest.mark.parametrize(
    "version, message",
    [
        (999, "newer"),
        # Format 1 PaiNN applied its filter bias beyond the cutoff: same parameters, other numbers.
        (1, "retrain"),
    ],
)
def test_unsupported_format_version_is_refused(tmp_path, version, message):
    path = tmp_path / "model.mlpot"
    small_painn((1, 6, 8)).save(path)
    rewrite_version(path, version)
    with pytest.raises(ModelFileError, match=message):
        mlpot.load(path)


def test_saved_file_has_ordinary_permissions(tmp_path):
    import os

    path = tmp_path / "model.mlpot"
    small_painn((1, 6, 8)).save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_a_replaced_file_keeps_its_permissions_and_a_new_one_follows_the_umask(tmp_path):
    import os

    from mlpot.modelfile import atomic_write

    private = tmp_path / "private.mlpot"
    private.write_bytes(b"old")
    private.chmod(0o600)
    atomic_write(private, b"new")  # was reset to 0644: a user's private file became readable
    assert (private.stat().st_mode & 0o777) == 0o600 and private.read_bytes() == b"new"
    before = os.umask(0o027)
    try:
        atomic_write(tmp_path / "fresh.mlpot", b"x")
    finally:
        os.umask(before)
    assert (tmp_path / "fresh.mlpot").stat().st_mode & 0o777 == 0o640


def test_a_model_config_takes_a_numpy_cutoff_and_refuses_what_would_fail_later(tmp_path):
    """A numpy cutoff failed at the first prediction (JSON of the cache key), a zero one blamed the
    structure's search box, a hyperparameter named like a field a TypeError from the constructor."""
    from mlpot.potential import ModelConfig, Potential

    config = ModelConfig("painn", np.float32(4.0), (1, 8), {"features": 8, "num_interactions": 1})
    assert type(config.cutoff) is float
    Potential.create(config, 0).save(tmp_path / "m.mlpot")  # JSON of the config: a numpy float failed here
    assert mlpot.load(tmp_path / "m.mlpot").config.cutoff == 4.0
    for cutoff in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="cutoff must be a positive number of Å"):
            ModelConfig("painn", cutoff, (1, 8))
    with pytest.raises(ValueError, match=r"hyperparameters \['dtype'\]: set these as ModelConfig fields"):
        ModelConfig("painn", 4.0, (14,), {"dtype": "float64"})
