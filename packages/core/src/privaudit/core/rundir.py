"""Run-directory helpers: atomic writes, stable cache keys, provenance records."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import secrets
import sys
import tempfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from privaudit.core.errors import InputError

# Libraries whose versions change audit numbers or plots; recorded when installed.
KEY_LIBRARIES = (
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "scikit-learn",
    "torch",
    "opacus",
    "sdv",
    "ctgan",
    "transformers",
)


def _create_fresh(parent: Path, prefix: str, make) -> tuple[Path, Any]:
    """`make(path)` on a new name `parent/<prefix><random>.tmp` (make must raise FileExistsError
    on a clash); returns the path and what make returned. Random names keep writers apart."""
    for _ in range(100):
        path = parent / f"{prefix}{secrets.token_hex(6)}.tmp"
        try:
            return path, make(path)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {parent}")


def make_staging_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new empty folder in `parent` with the usual mode (0o777 less the umask, as mkdir gives;
    tempfile.mkdtemp gives 0o700, which a staged run directory would keep when renamed)."""
    return _create_fresh(Path(parent), prefix, lambda path: path.mkdir(mode=0o777))[0]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` via a temp file in the same folder and an atomic rename; the file
    gets the mode open() gives (0o666 less the umask; tempfile.mkstemp would give 0o600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    tmp, fd = _create_fresh(path.parent, f".{path.name}.", lambda p: os.open(p, flags, 0o666))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types from numpy scalars/arrays, paths, tuples and non-finite floats (-> None)."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps_json(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, dumps_json(obj))


def prepare_output_dir(path: str | os.PathLike) -> Path:
    """The output directory `path`, created (with its parents) if needed and checked to be a
    writable directory, so that a bad `--out` stops a CLI at once instead of after the work.

    Call it once the inputs are validated and before any long work (training, attacks, the
    report): a bad input found earlier then leaves nothing behind. Raises InputError naming the
    path and the reason (exists as a file, cannot be created, not writable); the check writes and
    removes a temporary file, so it also holds for root and for read-only file systems."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"output path {path} exists and is not a directory.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise InputError(f"output directory {path} cannot be created or written ({reason}).") from e
    return path


def file_identity(path: str | os.PathLike) -> dict:
    """What a cache key records of an input file: its resolved path, size and modification time
    (an edited file gets new keys, so nothing computed from the old one is reused)."""
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns}


def stable_key(obj: Any, length: int = 16) -> str:
    """Short hex hash of a JSON-able config: equal configs (any key order) give equal keys."""
    canonical = json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]


def _installed_versions() -> dict[str, str]:
    versions = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and (name.lower().startswith("privaudit") or name.lower() in KEY_LIBRARIES):
            versions[name.lower()] = dist.version
    return dict(sorted(versions.items()))


def provenance(
    argv: Sequence[str] | None = None, seed: int | None = None, extra: Mapping | None = None
) -> dict:
    """Where a result came from: package versions, python, platform, command line, seed, time."""
    record = {
        "time_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "argv": list(sys.argv if argv is None else argv),
        "seed": seed,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _installed_versions(),
    }
    if extra:
        record["extra"] = to_jsonable(dict(extra))
    return record


class StageCache:
    """Stage outputs under `<root>/<stage>-<key>.<ext>`, the key a hash of the settings that decide
    them; written atomically, so a rerun reuses them and an interrupted run resumes at the first
    missing stage. Packages with torch add their own loaders for models and tensors."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, stage: str, key_fields: Any, ext: str) -> Path:
        return self.root / f"{stage}-{stable_key(key_fields)}.{ext}"

    def frame(self, path: Path, build) -> Any:
        """A pandas DataFrame stored as Parquet."""
        import io

        import pandas as pd

        if path.exists():
            return pd.read_parquet(path)
        frame = build()
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        atomic_write_bytes(path, buffer.getvalue())
        return frame

    def json(self, path: Path, build) -> Any:
        if path.exists():
            return json.loads(path.read_text())
        atomic_write_json(path, build())
        return json.loads(path.read_text())
