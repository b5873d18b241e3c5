"""Content-addressed artifact storage over fsspec (a local folder by default).

An object's key is ``objects/<sha[:2]>/<sha[2:]><ext>``, where ``sha`` is the sha256 of its
bytes. Objects are immutable: writing the same bytes twice stores one object, and an object
appears under its final name only once it is complete (written to a temporary name, then
renamed). URIs handed out are full fsspec URLs (plain absolute paths for local stores).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from jupyter_mlplat.errors import NotFoundError, SerializationError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_EXT_RE = re.compile(r"^(\.[A-Za-z0-9_-]{1,16}){0,2}$")
_KEY_RE = re.compile(r"^objects/([0-9a-f]{2})/([0-9a-f]{62})((?:\.[A-Za-z0-9_-]{1,16}){0,2})$")


@dataclass(frozen=True)
class ArtifactInfo:
    """Where an object was stored: its sha256, its URI and its size in bytes."""

    sha256: str
    uri: str
    size: int


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> None:
    """Write ``data`` to the local file ``path`` atomically.

    The bytes go to a temporary file in the same folder, are fsynced, and the temporary file is
    renamed over ``path`` with :func:`os.replace`; readers see either the old file or the whole
    new one, never a partial write.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file; its folder is created when missing.
    data : bytes or str
        Content; ``str`` is encoded as UTF-8.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    _fsync_dir(target.parent)


def _unlink_quietly(path: str | os.PathLike[str]) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:  # a leftover temp file must not mask the error being raised
        log.warning("could not remove temporary file %s", path, exc_info=True)


def _fsync_dir(path: str | os.PathLike[str]) -> None:
    # Makes the rename itself durable; not every platform can open a folder.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _normalise_ext(ext: str) -> str:
    if ext and not ext.startswith("."):
        ext = "." + ext
    if not _EXT_RE.match(ext):
        raise ValueError(f"invalid artifact extension {ext!r}")
    return ext


class ArtifactStore:
    """Content-addressed artifact storage on any fsspec filesystem.

    Parameters
    ----------
    url : str or os.PathLike
        Root of the store: a local path, a ``file://`` URL or any fsspec URL (``s3://bucket/x``,
        ``memory://store``). A local root is created when missing.
    cache_dir : str, optional
        Where :meth:`local_path` keeps downloaded copies of remote objects; defaults to a
        folder under the system temp folder. Unused for local stores.
    storage_options : dict, optional
        Passed to :func:`fsspec.core.url_to_fs` (credentials, endpoint, ...).
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        *,
        cache_dir: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        from fsspec.core import url_to_fs
        from fsspec.implementations.local import LocalFileSystem

        url = os.fspath(url)
        if "://" not in url and "::" not in url:
            url = os.path.abspath(os.path.expanduser(url))
        fs, root = url_to_fs(url, **(storage_options or {}))
        self.fs: AbstractFileSystem = fs
        self.is_local = isinstance(fs, LocalFileSystem)
        self.root = root.rstrip("/") if not self.is_local else os.path.abspath(root)
        self.url = url
        if self.is_local:
            os.makedirs(self.root, exist_ok=True)
        self._cache_dir = cache_dir

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    # -- keys and URIs -------------------------------------------------------------------------

    def key_for(self, sha256: str, ext: str) -> str:
        """The object key (relative to the root) of content ``sha256`` with extension ``ext``."""
        if not _SHA_RE.match(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return f"objects/{sha256[:2]}/{sha256[2:]}{_normalise_ext(ext)}"

    def _path_for_key(self, key: str) -> str:
        if self.is_local:
            return os.path.join(self.root, *key.split("/"))
        return f"{self.root}/{key}"

    def _uri_for_path(self, path: str) -> str:
        return path if self.is_local else self.fs.unstrip_protocol(path)

    def uri_for(self, sha256: str, ext: str) -> str:
        """The URI an object with this content and extension has (or would have) here."""
        return self._uri_for_path(self._path_for_key(self.key_for(sha256, ext)))

    def _key_of(self, uri: str) -> str | None:
        """The object key of ``uri`` if it names an object of this store, else None."""
        path = self.fs._strip_protocol(os.fspath(uri))
        if self.is_local:
            path = os.path.abspath(path)
            rel = os.path.relpath(path, self.root)
            if rel.startswith("..") or os.path.isabs(rel):
                return None
            rel = rel.replace(os.sep, "/")
        else:
            prefix = self.root + "/"
            if not path.startswith(prefix):
                return None
            rel = path[len(prefix) :]
        return rel if _KEY_RE.match(rel) else None

    def _resolve(self, uri: str) -> tuple[str, str]:
        """(key, fs path) of ``uri``; refuses anything that is not an object of this store."""
        key = self._key_of(uri)
        if key is None:
            raise NotFoundError(f"{uri!r} is not an artifact of the store at {self.url!r}")
        return key, self._path_for_key(key)

    # -- writing -------------------------------------------------------------------------------

    def put_file(self, local_path: str | os.PathLike[str], ext: str) -> ArtifactInfo:
        """Store the content of a local file.

        Parameters
        ----------
        local_path : str or os.PathLike
            The file to copy in; it is left in place.
        ext : str
            Extension of the object key (``".parquet"``, ``".npy"``, ...).

        Returns
        -------
        ArtifactInfo
            sha256, URI and size of the stored object. Storing bytes that are already there
            rewrites nothing and returns the existing object.
        """
        ext = _normalise_ext(ext)
        if self.is_local:
            return self._put_file_local(os.fspath(local_path), ext)
        sha, size = _hash_file(local_path)
        path = self._path_for_key(self.key_for(sha, ext))
        if not self.fs.exists(path):
            tmp = self._tmp_path_beside(path)
            try:
                self.fs.put_file(os.fspath(local_path), tmp)
                self.fs.mv(tmp, path)
            except BaseException:
                self._rm_quietly(tmp)
                raise
        return ArtifactInfo(sha, self._uri_for_path(path), size)

    def _put_file_local(self, local_path: str, ext: str) -> ArtifactInfo:
        # One pass: hash while copying into a temp file inside objects/, then rename it to
        # its content address (same filesystem, so os.replace is atomic).
        objects = os.path.join(self.root, "objects")
        os.makedirs(objects, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=objects, prefix=".put-", suffix=".tmp")
        try:
            digest = hashlib.sha256()
            size = 0
            with open(local_path, "rb") as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            sha = digest.hexdigest()
            path = self._path_for_key(self.key_for(sha, ext))
            if os.path.exists(path):
                _unlink_quietly(tmp)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.replace(tmp, path)
                _fsync_dir(os.path.dirname(path))
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return ArtifactInfo(sha, path, size)

    def put_bytes(self, data: bytes, ext: str) -> ArtifactInfo:
        """Store ``data``; see :meth:`put_file`."""
        ext = _normalise_ext(ext)
        data = bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        path = self._path_for_key(self.key_for(sha, ext))
        if self.is_local:
            if not os.path.exists(path):
                atomic_write(path, data)
        elif not self.fs.exists(path):
            tmp = self._tmp_path_beside(path)
            try:
                self.fs.pipe_file(tmp, data)
                self.fs.mv(tmp, path)
            except BaseException:
                self._rm_quietly(tmp)
                raise
        return ArtifactInfo(sha, self._uri_for_path(path), len(data))

    def _tmp_path_beside(self, path: str) -> str:
        folder, name = path.rsplit("/", 1)
        return f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"

    def _rm_quietly(self, path: str) -> None:
        try:
            if self.fs.exists(path):
                self.fs.rm(path)
        except Exception:  # noqa: BLE001 - cleanup must not mask the original error
            log.warning("could not remove temporary object %s", path, exc_info=True)

    # -- reading -------------------------------------------------------------------------------

    def exists(self, uri: str) -> bool:
        """Whether ``uri`` names an object that this store holds."""
        key = self._key_of(uri)
        return key is not None and self.fs.exists(self._path_for_key(key))

    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        """Open an object for reading (``"rb"`` or ``"r"``); objects are never written in place."""
        if mode not in ("rb", "r"):
            raise ValueError(f"artifacts are read-only; mode {mode!r} is not allowed")
        _, path = self._resolve(uri)
        try:
            return self.fs.open(path, mode)
        except FileNotFoundError:
            raise NotFoundError(f"artifact {uri!r} does not exist") from None

    def read_bytes(self, uri: str) -> bytes:
        """The whole content of an object."""
        with self.open(uri, "rb") as f:
            return f.read()

    def local_path(self, uri: str) -> str:
        """A local file holding the object: the object itself for local stores, otherwise a
        cached download (written atomically and checked against its sha256)."""
        key, path = self._resolve(uri)
        if self.is_local:
            if not os.path.exists(path):
                raise NotFoundError(f"artifact {uri!r} does not exist")
            return path
        cached = os.path.join(self._cache_root(), *key.split("/"))
        if os.path.exists(cached):
            return cached
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        m = _KEY_RE.match(key)
        assert m is not None  # _resolve only returns well-formed keys
        expected = m.group(1) + m.group(2)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(cached), prefix=".get-", suffix=".tmp")
        try:
            digest = hashlib.sha256()
            try:
                src = self.fs.open(path, "rb")
            except FileNotFoundError:
                raise NotFoundError(f"artifact {uri!r} does not exist") from None
            with src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
            if digest.hexdigest() != expected:
                raise SerializationError(
                    f"artifact {uri!r} is corrupt: its content hashes to {digest.hexdigest()}"
                )
            os.replace(tmp, cached)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return cached

    def _cache_root(self) -> str:
        if self._cache_dir is None:
            tag = hashlib.sha256(self.fs.unstrip_protocol(self.root).encode()).hexdigest()[:16]
            self._cache_dir = os.path.join(tempfile.gettempdir(), "mlplat-artifacts", tag)
        return self._cache_dir

    def clear_cache(self) -> None:
        """Remove the local copies :meth:`local_path` downloaded (remote stores only)."""
        if not self.is_local and self._cache_dir is not None:
            shutil.rmtree(self._cache_dir, ignore_errors=True)


def _hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
