"""Where a store lives: a local path or any fsspec URL, resolved once into a :class:`StoreLocation`.

Every store function accepts a path, a URL (``s3://bucket/m.zarr``, ``gs://…``, ``az://…``,
``file:///…``) or a :class:`StoreLocation`, and resolves it with :func:`store_location`.  A
location gives the two ways the package touches a store:

* Zarr arrays and groups through zarr's storage layer: :meth:`StoreLocation.zarr_store`
  (``zarr.storage.LocalStore`` on local disk, ``zarr.storage.FsspecStore`` elsewhere);
* small JSON objects (manifest records, overview records, the writer lease) through
  :meth:`~StoreLocation.get`, :meth:`~StoreLocation.put`, :meth:`~StoreLocation.create`,
  :meth:`~StoreLocation.put_if`, :meth:`~StoreLocation.delete`, :meth:`~StoreLocation.list` and
  :meth:`~StoreLocation.get_many`.

A ``put`` is one object written whole: on local disk a temporary file renamed over the
target (``os.replace``), on object storage a single PUT, which readers see whole or not at all.
``create`` is exclusive (a temporary file hard-linked to its name locally, ``If-None-Match: *`` on
S3) and ``put_if``
a compare-and-swap (an ``fcntl`` lock locally, ``If-Match: <ETag>`` on S3): the lease
(:mod:`s2cube.store.lease`) is built on them.

Credentials and options come from the environment (``AWS_*``, ``GOOGLE_*``, ``AZURE_*`` as the
fsspec backend reads them; ``S2CUBE_STORAGE_OPTIONS`` as a JSON object) and from an explicit
``storage_options`` mapping, which wins.  A string is a URL if it has a ``scheme://`` prefix;
nothing ever creates a local folder named after a URL.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError, MissingDependencyError

__all__ = [
    "StoreLocation",
    "StoreURLError",
    "StoreLike",
    "parse_storage_options",
    "store_location",
]

#: scheme → the pip extra (or package) that provides it
SCHEME_EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
}
ENV_OPTIONS = "S2CUBE_STORAGE_OPTIONS"
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


class StoreURLError(InputError):
    """A store URL has a scheme no installed fsspec backend knows."""


class StoreLocation:
    """A resolved store location: ``url``, ``storage_options``, the Zarr store and small objects.

    Picklable (the filesystem is reopened on the other side), so it travels to dask workers.
    ``str(location)`` is the path or URL as the user gave it.
    """

    def __init__(
        self, url: str, protocol: str, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self.url = url
        self.protocol = protocol
        self.storage_options: dict[str, Any] = dict(storage_options or {})
        self._fs: Any = None
        self._root: str | None = None

    # ------------------------------------------------------------------ identity
    @property
    def is_local(self) -> bool:
        return self.protocol == "file"

    @property
    def path(self) -> Path:
        """The local directory (local stores only)."""
        if not self.is_local:
            raise InputError(f"store {self.url!r} is not on local disk")
        return Path(self.url.removeprefix("file://"))

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"StoreLocation({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoreLocation) and (self.url, self.storage_options) == (
            other.url,
            other.storage_options,
        )

    def __hash__(self) -> int:
        return hash(self.url)

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "protocol": self.protocol, "opts": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["protocol"], state["opts"])  # type: ignore[misc]

    # ------------------------------------------------------------------ backends
    @property
    def fs(self) -> Any:
        """The (synchronous) fsspec filesystem of a remote store."""
        if self._fs is None:
            import fsspec

            # no listing cache: records and leases are written by other processes (and by
            # zarr's own filesystem instance), and a stale listing would hide them
            options = {"use_listings_cache": False, **self.storage_options}
            self._fs, self._root = fsspec.url_to_fs(self.url, **options)
        return self._fs

    def _key(self, key: str) -> str:
        _ = self.fs
        root = str(self._root).rstrip("/")
        return f"{root}/{key}" if key else root

    def zarr_store(self, *, read_only: bool = False) -> Any:
        """The Zarr v3 store object (``LocalStore`` or ``FsspecStore``) for zarr and xarray."""
        from zarr.storage import FsspecStore, LocalStore

        if self.is_local:
            return LocalStore(self.path, read_only=read_only)
        return FsspecStore.from_url(
            self.url, storage_options=dict(self.storage_options), read_only=read_only
        )

    # ------------------------------------------------------------------ small objects
    def exists(self, key: str = "") -> bool:
        """True if the object ``key`` (or, with ``""``, anything at the location) exists."""
        if self.is_local:
            return (self.path / key).exists()
        if key:
            return bool(self.fs.exists(self._key(key)))
        return bool(self.list(""))

    def is_empty(self, ignore: tuple[str, ...] = ()) -> bool:
        """Nothing at the location (files or folders), except the names in ``ignore``."""
        if self.is_local:
            p = self.path
            if not p.exists():
                return True
            return p.is_dir() and not [f for f in p.iterdir() if f.name not in ignore]
        path = self._key("")
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=False)
        except FileNotFoundError:
            return True
        return not [e for e in entries if e.rstrip("/").rsplit("/", 1)[-1] not in ignore]

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None if it does not exist."""
        if self.is_local:
            try:
                return (self.path / key).read_bytes()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
        try:
            return bytes(self.fs.cat_file(self._key(key)))
        except FileNotFoundError:
            return None

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        """Several objects at once (concurrent on object storage); missing ones are left out."""
        if self.is_local:
            out = {}
            for k in keys:
                data = self.get(k)
                if data is not None:
                    out[k] = data
            return out
        if not keys:
            return {}
        paths = {self._key(k): k for k in keys}
        got = self.fs.cat(list(paths), on_error="omit")
        return {paths[p]: bytes(v) for p, v in got.items() if not isinstance(v, Exception)}

    def put(self, key: str, data: bytes) -> None:
        """Write one object whole (rename on local disk, one PUT on object storage)."""
        if self.is_local:
            target = self.path / key
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return
        self.fs.pipe_file(self._key(key), data)

    def create(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist (atomic); False if it existed.

        On local disk the object appears whole or not at all: the bytes go to a temporary
        file first, then a hard link names it (fails if the name exists).  Opening the name
        itself with ``O_EXCL`` would show an empty object to a reader for a moment, and a
        compare-and-swap on that empty object lets a second writer in (two runs holding one
        lease).
        """
        if self.is_local:
            target = self.path / key
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, 0o644)
                os.link(tmp, target)
            except FileExistsError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
                return self._create_exclusive(target, data)  # a filesystem without hard links
            finally:
                Path(tmp).unlink(missing_ok=True)
            return True
        try:
            self.fs.pipe_file(self._key(key), data, mode="create")
        except FileExistsError:
            return False
        except OSError as exc:
            if _precondition_failed(exc):
                return False
            raise
        return True

    @staticmethod
    def _create_exclusive(target: Path, data: bytes) -> bool:
        """``O_EXCL`` create where hard links are not supported.  The object is empty for a
        moment, so there two runs starting at the same instant can both take the lease."""
        try:
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return True

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and a version token for :meth:`put_if` (None if absent)."""
        if self.is_local:
            data = self.get(key)
            return None if data is None else (data, data.hex())
        path = self._key(key)
        try:
            self.fs.invalidate_cache(path)
            info = self.fs.info(path)
            data = bytes(self.fs.cat_file(path))
        except FileNotFoundError:
            return None
        return data, str(info.get("ETag") or info.get("etag") or info.get("generation") or "")

    def put_if(self, key: str, data: bytes, token: str) -> bool:
        """Replace ``key`` only if it is still the version ``token`` (compare-and-swap).

        S3: ``If-Match: <ETag>`` (atomic on servers with conditional writes).  Local disk: the
        read-compare-replace runs under an exclusive ``fcntl`` lock.  Other backends: a re-read
        right before the write (not atomic).
        """
        if self.is_local:
            with _local_lock(self.path / key):
                now = self.get(key)
                if now is None or now.hex() != token:
                    return False
                self.put(key, data)
                return True
        if self.protocol in ("s3", "s3a"):
            try:
                self.fs.pipe_file(self._key(key), data, IfMatch=token)
            except FileNotFoundError:
                return False
            except OSError as exc:
                if _precondition_failed(exc):
                    return False
                raise
            return True
        version = self.get_versioned(key)
        if version is None or version[1] != token:
            return False
        self.put(key, data)
        return True

    def delete(self, key: str) -> None:
        """Remove an object (no error if it is absent)."""
        if self.is_local:
            (self.path / key).unlink(missing_ok=True)
            return
        try:
            self.fs.rm_file(self._key(key))
        except FileNotFoundError:
            pass

    def delete_if(self, key: str, token: str) -> bool:
        """Remove ``key`` only if it is still the version ``token``."""
        if self.is_local:
            with _local_lock(self.path / key):
                now = self.get(key)
                if now is None or now.hex() != token:
                    return False
                self.delete(key)
                return True
        version = self.get_versioned(key)
        if version is None or version[1] != token:
            return False
        self.delete(key)
        return True

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None if it does not exist (no read of its data)."""
        if self.is_local:
            try:
                target = self.path / key
                return target.stat().st_size if target.is_file() else None
            except (FileNotFoundError, NotADirectoryError):
                return None
        path = self._key(key)
        try:
            self.fs.invalidate_cache(path)
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            return None
        return int(info.get("size") or 0)

    def sizes(self, prefix: str) -> dict[str, int]:
        """``{key: bytes}`` of every object under the folder ``prefix``, at any depth (one
        recursive listing: no request per object on object storage)."""
        if self.is_local:
            d = self.path / prefix
            if not d.is_dir():
                return {}
            return {
                str(f.relative_to(self.path).as_posix()): f.stat().st_size
                for f in d.rglob("*")
                if f.is_file()
            }
        path = self._key(prefix)
        self.fs.invalidate_cache(path)
        try:
            found = self.fs.find(path, detail=True)
        except FileNotFoundError:
            return {}
        root = self._key("").rstrip("/") + "/"
        return {
            name.removeprefix(root): int(info.get("size") or 0)
            for name, info in found.items()
            if info.get("type") != "directory"
        }

    def folders(self, prefix: str) -> list[str]:
        """Names of the folders directly under ``prefix`` (sorted; empty if none)."""
        if self.is_local:
            d = self.path / prefix
            return sorted(f.name for f in d.iterdir() if f.is_dir()) if d.is_dir() else []
        path = self._key(prefix)
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        return sorted(
            e["name"].rstrip("/").rsplit("/", 1)[-1]
            for e in entries
            if e.get("type") == "directory"
        )

    def list(self, prefix: str) -> list[str]:
        """Names of the objects directly under the folder ``prefix`` (sorted)."""
        if self.is_local:
            d = self.path / prefix
            return sorted(f.name for f in d.iterdir() if f.is_file()) if d.is_dir() else []
        path = self._key(prefix)
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        return sorted(
            e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "file"
        )


StoreLike = str | os.PathLike[str] | StoreLocation


def _precondition_failed(exc: BaseException) -> bool:
    text = f"{exc} {getattr(exc, '__cause__', '')}"
    return "PreconditionFailed" in text or "pre-condition" in text or "412" in text


class _local_lock:
    """An exclusive ``fcntl`` lock on ``<target>.lock`` for a read-compare-replace."""

    def __init__(self, target: Path) -> None:
        self.file = target.with_name(f".{target.name}.lock")

    def __enter__(self) -> None:
        import fcntl

        self.file.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.file, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def parse_storage_options(pairs: Any) -> dict[str, Any]:
    """``["key=value", ...]`` (the CLI's ``--storage-option``) → a storage_options mapping.

    Values are JSON when they parse (``anon=true``, ``max_concurrency=8``), else strings;
    dotted keys nest (``client_kwargs.endpoint_url=http://…``).
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = str(pair).partition("=")
        if not sep or not key:
            raise InputError(
                f"storage option {pair!r} is not key=value; e.g. --storage-option anon=true"
            )
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _env_options() -> dict[str, Any]:
    raw = os.environ.get(ENV_OPTIONS)
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{ENV_OPTIONS}={raw!r} is not JSON; set it to an object like '{{\"anon\": true}}'"
        ) from exc
    if not isinstance(value, dict):
        raise InputError(f"{ENV_OPTIONS}={raw!r} must be a JSON object")
    return value


def store_location(
    store: StoreLike, storage_options: Mapping[str, Any] | None = None
) -> StoreLocation:
    """Resolve a path, URL or location into a :class:`StoreLocation`.

    Parameters
    ----------
    store
        A local path, a ``file://`` URL, any fsspec URL (``s3://bucket/m.zarr``) or a location
        (returned as is unless ``storage_options`` are given).
    storage_options
        Options of the fsspec backend (credentials, endpoint...); merged over the JSON object
        in ``S2CUBE_STORAGE_OPTIONS``.

    Raises
    ------
    StoreURLError
        The URL's scheme is not known to fsspec.
    MissingDependencyError
        The scheme is known but its backend (s3fs, gcsfs, adlfs) is not installed.
    """
    if isinstance(store, StoreLocation):
        if storage_options is None:
            return store
        store = store.url
    text = os.fspath(store)
    m = _URL.match(text)
    if m is None:
        return StoreLocation(text, "file")
    scheme = m.group(1).lower()
    if scheme == "file":
        return StoreLocation(text[len("file://") :], "file")
    import fsspec

    try:
        fsspec.get_filesystem_class(scheme)
    except ValueError as exc:
        raise StoreURLError(
            f"store {text!r}: unknown URL scheme {scheme!r}; use a local path or an fsspec URL "
            "such as s3://bucket/mosaic.zarr, gs://… or az://… (with s2cube[s3], s2cube[gcs] "
            "or s2cube[azure] installed)"
        ) from exc
    except ImportError as exc:
        extra = SCHEME_EXTRAS.get(scheme)
        how = f"pip install 's2cube[{extra}]'" if extra else f"the fsspec backend ({exc})"
        raise MissingDependencyError(
            f"store {text!r}: the {scheme}:// backend is not installed; install it with {how}"
        ) from exc
    options = {**_env_options(), **dict(storage_options or {})}
    return StoreLocation(text.rstrip("/"), scheme, options)
