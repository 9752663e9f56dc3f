"""Content-addressed cache of the model stage.

An entry is a directory ``<cache_dir>/model/<kind>/<key>/`` where ``key`` is the sha256 of a
canonical JSON of everything that determines the entry: the configuration (with the contents
of any user file it names), the knobs, the versions of the libraries that compute it and
:data:`CODE_VERSION`. Kinds (:data:`KINDS`): ``base`` (the trained base model), ``pruned`` (a
channel-pruned, re-trained model), ``sparse`` (a magnitude-pruned model), ``variant`` (a full
:class:`~mcusearch.model.ModelResult`) and ``footprint`` (a candidate's size, for early
rejection). The cache lives on disk, so it survives restarts; ``mcusearch cache info|clear SPEC``
shows and removes it.

Writes are atomic: an entry is assembled in ``<cache_dir>/model/tmp/`` and renamed into place
only when complete (the rename of a directory is atomic on one file system), so a run killed
halfway never leaves a half-written entry, only a stale temporary directory that the next run
removes. Two processes building the same entry at once both succeed; the first rename wins.

This module imports no TensorFlow.
"""
from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger("mcusearch.model")

# Bump when the model stage computes something differently (preprocessing, training, pruning,
# quantisation, evaluation, e.g. prune.RETRAIN_LR_FACTOR, which variant keys do not include so
# that a cache hit needs no TensorFlow): every cached entry is then rebuilt.
CODE_VERSION = "model-2"
COMPLETE = "entry.json"  # written last inside an entry
KINDS = ("base", "pruned", "sparse", "variant", "footprint")

# distribution name -> what it is reported as
_LIBRARIES = {
    "tensorflow-cpu": "tensorflow", "tensorflow": "tensorflow", "tf-keras": "tf_keras",
    "tensorflow-model-optimization": "tfmot", "kerassurgeon": "kerassurgeon", "numpy": "numpy",
}
_versions: dict[str, str] | None = None
_file_hashes: dict[tuple[str, int, int], str] = {}


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour the cached results depend on (no imports)."""
    global _versions
    if _versions is None:
        out: dict[str, str] = {}
        for dist, name in _LIBRARIES.items():
            if name in out:
                continue
            try:
                out[name] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                pass
        for name in set(_LIBRARIES.values()) - set(out):
            out[name] = "absent"
        _versions = dict(sorted(out.items()))
    return dict(_versions)


def file_sha256(path: Path) -> str:
    """sha256 of a file's contents (memoised per path, size and modification time)."""
    path = Path(path)
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _file_hashes:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _file_hashes[memo] = h.hexdigest()
    return _file_hashes[memo]


def canonical(obj):
    """A JSON-able, order-independent form of ``obj``. Files are identified by their contents
    (a changed .npz or .h5 under the same name gives a new key), directories by their path."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        d = {f.name: canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        d["__type__"] = type(obj).__name__
        return d
    if isinstance(obj, Path):
        if obj.is_file():
            return {"file_sha256": file_sha256(obj)}
        return {"path": str(obj)}
    if isinstance(obj, enum.Enum):
        return canonical(obj.value)
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return canonical(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot key a {type(obj).__name__}")


def canonical_json(obj) -> str:
    return json.dumps(canonical(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def cache_key(kind: str, *parts) -> str:
    """sha256 over (kind, parts, library versions, code version)."""
    doc = {"kind": kind, "parts": list(parts), "libraries": library_versions(),
           "code": CODE_VERSION}
    return hashlib.sha256(canonical_json(doc).encode()).hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_tree(root: Path) -> None:
    for p in sorted(root.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
    with contextlib.suppress(OSError):
        fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class ModelCache:
    """Entries under ``<cache_dir>/model``: ``get`` finds a complete one, ``put`` makes one."""

    def __init__(self, cache_dir: Path | str):
        self.root = Path(cache_dir) / "model"
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._remove_stale()

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def get(self, kind: str, key: str) -> Path | None:
        """The entry's directory if it exists and is complete, else None."""
        p = self.path(kind, key)
        return p if (p / COMPLETE).is_file() else None

    def meta(self, kind: str, key: str) -> dict | None:
        p = self.get(kind, key)
        if p is None:
            return None
        return json.loads((p / COMPLETE).read_text())

    @contextlib.contextmanager
    def lock(self, kind: str, key: str) -> Iterator[None]:
        """Hold an exclusive lock on one entry while building it, so that parallel trials
        wait for the first builder instead of training the same model twice. (Advisory,
        released by the OS when the process dies; correctness never depends on it.)"""
        import fcntl
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{kind}-{key}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def put(self, kind: str, key: str, meta: dict | None = None) -> Iterator[Path]:
        """Yield an empty temporary directory to fill; on success it becomes the entry.

        ``meta`` (filled in by the caller inside the ``with`` block, if it likes) is written
        last as ``entry.json``, the completeness marker. On an exception nothing is kept.
        """
        tmp = self.tmp / f"{kind}-{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        meta = {} if meta is None else meta
        try:
            yield tmp
            meta.setdefault("kind", kind)
            meta.setdefault("key", key)
            meta.setdefault("code", CODE_VERSION)
            meta.setdefault("libraries", library_versions())
            (tmp / COMPLETE).write_text(json.dumps(meta, indent=1, sort_keys=True,
                                                   default=_json_default))
            _fsync_tree(tmp)
            final = self.path(kind, key)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists() and not (final / COMPLETE).is_file():
                shutil.rmtree(final, ignore_errors=True)  # debris of an older layout
            try:
                os.rename(tmp, final)
                log.debug("cache: stored %s/%s", kind, key[:16])
            except OSError:
                if not (final / COMPLETE).is_file():
                    raise
                log.debug("cache: %s/%s was stored concurrently; keeping that one", kind,
                          key[:16])
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def info(self) -> dict:
        """Per kind: the number of complete entries and their bytes on disk; and the total."""
        out: dict = {"root": str(self.root), "kinds": {}}
        total_n = total_b = 0
        for kind in KINDS:
            n = b = 0
            d = self.root / kind
            if d.is_dir():
                for e in d.iterdir():
                    if (e / COMPLETE).is_file():
                        n += 1
                        b += sum(p.stat().st_size for p in e.rglob("*") if p.is_file())
            out["kinds"][kind] = {"entries": n, "bytes": b}
            total_n, total_b = total_n + n, total_b + b
        out["entries"], out["bytes"] = total_n, total_b
        return out

    def clear(self, kinds: tuple[str, ...] | list[str] | None = None) -> dict[str, int]:
        """Remove every entry of ``kinds`` (default: all); returns the entries removed per kind.
        An entry is renamed away first, so a reader never sees half of one."""
        removed: dict[str, int] = {}
        for kind in kinds or KINDS:
            if kind not in KINDS:
                raise ValueError(f"unknown cache kind {kind!r}; kinds: {', '.join(KINDS)}")
            d = self.root / kind
            n = 0
            if d.is_dir():
                for e in list(d.iterdir()):
                    trash = self.tmp / (f"clear-{kind}{e.name[:16]}-{os.getpid()}-"
                                        f"{uuid.uuid4().hex[:8]}")
                    try:
                        os.rename(e, trash)
                    except OSError:
                        continue
                    n += (trash / COMPLETE).is_file()
                    shutil.rmtree(trash, ignore_errors=True)
            removed[kind] = n
        return removed

    def _remove_stale(self) -> None:
        """Remove temporary directories of processes that no longer run (killed runs)."""
        for p in self.tmp.iterdir():
            try:
                pid = int(p.name.split("-")[-2])
            except (ValueError, IndexError):
                continue
            if pid != os.getpid() and not _pid_alive(pid):
                shutil.rmtree(p, ignore_errors=True)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
