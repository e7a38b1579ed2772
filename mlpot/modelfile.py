"""The ``.mlpot`` model file: config + parameters, no pickle.

Layout: ``MAGIC`` (8 bytes) | SHA-256 of the payload (32 bytes) | payload.
The payload is msgpack: ``{"format_version", "config", "params"}`` where
``params`` maps "/"-joined parameter paths to ``{"dtype", "shape", "data"}``.
Loading only ever decodes msgpack and numpy buffers: it cannot execute code.
Writes go to a temporary file that is renamed into place, so a crash never
leaves a half-written model where a good one was.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import tempfile
from pathlib import Path

import jax.numpy as jnp
import msgpack
import numpy as np
from flax import traverse_util

from mlpot.potential import FORMAT_VERSION, ModelConfig, Potential

MAGIC = b"MLPOT\x00\x01\n"


class ModelFileError(ValueError):
    """A model file that cannot be read: wrong format, corrupt or too new."""


def _encode_params(params) -> dict:
    # Empty nodes kept: a committee of parameter-free members (Lennard-Jones) is {"member_0": {}, ...},
    # and without them it would load as {} with its members gone.
    flat = traverse_util.flatten_dict(params, sep="/", keep_empty_nodes=True)
    return {
        key: {"empty": True}
        if v is traverse_util.empty_node
        else {"dtype": str(np.asarray(v).dtype), "shape": list(np.shape(v)), "data": np.asarray(v).tobytes()}
        for key, v in flat.items()
    }


def _decode_params(encoded: dict) -> dict:
    # Device arrays, as a freshly created model has: jit keys its compiled programs on the
    # argument types too, so numpy parameters would recompile what the model already compiled.
    flat = {
        key: traverse_util.empty_node
        if v.get("empty")
        else jnp.asarray(np.frombuffer(v["data"], dtype=np.dtype(v["dtype"])).reshape(v["shape"]))
        for key, v in encoded.items()
    }
    return traverse_util.unflatten_dict(flat, sep="/")


def check_output_path(option: str, path, inputs=None) -> None:
    """Refuse, before any work, an output that cannot become a file: a folder (or a name ending in
    a slash), a path through an existing file, or one in a folder that cannot be written. ``option``
    names it in the message. ``inputs``: {what: path} of the command's input files, which the output
    may not be (it would replace one, ``--overwrite`` or not)."""
    target = Path(path)
    if target.is_dir() or str(path).endswith(("/", os.sep)):
        raise ValueError(f"{option} {path} is a folder; give a file name")
    problem = _unwritable(target.parent)
    if problem:
        raise ValueError(f"{option} {path}: {problem}")
    for what, given in (inputs or {}).items():
        if _same_file(target, Path(given)):
            raise ValueError(f"{option} {path} is {what}: it would be replaced; give the output another name")


def _same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))


def check_output_folder(option: str, path) -> None:
    """As ``check_output_path``, for a folder that files will be written into (made if missing)."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder")
    problem = _unwritable(target)
    if problem:
        raise ValueError(f"{option} {path}: {problem}")


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be made in ``folder`` (and the folders missing above it), or None."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    # A real file, not os.access: root passes access() on read-only mounts such as /sys
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        return f"cannot write in {existing} ({err.strerror})"
    return None


def _process_umask() -> int:
    """The umask, read without setting it where the system says it (``os.umask`` sets it, and a file
    another thread creates in between would get the temporary one)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files: keep a replaced file's permissions (a user's 0600 stays private), else
        # give those a plain open() would
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            mode = 0o666 & ~_process_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # the rename itself survives a power cut only once the folder is synced
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def finite_or_null(value):
    """``value`` with every non-finite float (an R² of one frame, an unlabelled frame's error) as None,
    through dicts and lists: strict JSON readers refuse NaN."""
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path, document) -> None:
    """``document`` as indented, strict JSON (non-finite numbers as null), written whole (``atomic_write``)."""
    atomic_write(path, json.dumps(finite_or_null(document), indent=2, allow_nan=False).encode())


def to_bytes(potential: Potential, extra: dict | None = None) -> bytes:
    payload = msgpack.packb(
        {
            "format_version": FORMAT_VERSION,
            "config": potential.config.to_dict(),
            "params": _encode_params(potential.params),
            "extra": extra or {},
        },
        use_bin_type=True,
    )
    return MAGIC + hashlib.sha256(payload).digest() + payload


def from_bytes(data: bytes, where: str = "model file") -> tuple[Potential, dict]:
    if not data.startswith(MAGIC):
        raise ModelFileError(f"{where}: not an mlpot model file (bad magic bytes)")
    digest, payload = data[len(MAGIC) : len(MAGIC) + 32], data[len(MAGIC) + 32 :]
    if hashlib.sha256(payload).digest() != digest:
        raise ModelFileError(f"{where}: corrupt or truncated (checksum mismatch)")
    try:
        content = msgpack.unpackb(payload, raw=False, strict_map_key=False)
        version = content["format_version"]
    except Exception as err:  # noqa: BLE001 - any decode failure means a corrupt file
        raise ModelFileError(f"{where}: cannot decode payload ({err})") from None
    # a checksum proves the bytes are the writer's, not that the writer was mlpot
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelFileError(f"{where}: format_version must be a whole number, got {version!r}")
    for key in ("config", "params"):
        if not isinstance(content.get(key), dict):
            raise ModelFileError(f"{where}: '{key}' must be a mapping, got {type(content.get(key)).__name__}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{where}: format version {version} is newer than this mlpot supports ({FORMAT_VERSION}); upgrade mlpot"
        )
    if version < 2 and content["config"].get("name") == "painn":
        raise ModelFileError(
            f"{where}: a PaiNN model of format 1, whose radial filter bias acted beyond the cutoff"
            " (energies depended on the neighbour-list skin); retrain it with this mlpot"
        )
    try:
        config = ModelConfig(**content["config"])
        params = _decode_params(content["params"])
    except (TypeError, KeyError, ValueError, AttributeError) as err:
        raise ModelFileError(f"{where}: incompatible model config or parameters ({err})") from None
    return Potential(config, params), content.get("extra", {})


def save(potential: Potential, path, extra: dict | None = None) -> None:
    atomic_write(path, to_bytes(potential, extra))


def load(path) -> Potential:
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a model file")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    return from_bytes(path.read_bytes(), str(path))[0]
