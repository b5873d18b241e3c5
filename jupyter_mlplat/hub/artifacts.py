"""Each owner's own part of the shared artifact store: ``<root>/users/<owner>/objects/...``.

The store service (and a shared serve process) never hand one owner's objects to another: every
read and write goes through the owner's own :class:`OwnerArtifactStore`, rooted in that owner's
folder, which refuses any URI outside it. Objects are not shared across owners, so an upload
never reveals whether someone else already holds the same bytes.

Nothing another local account can write is trusted: copies of remote objects are cached in a
folder of the process's own (mode 0700, under its Jupyter data dir, never a predictable folder
in ``/tmp``), and a cached copy is opened without following links and checked against its
content address each time before it is used. Downloads from the service stream the object
itself (``fs.open``), never a cached copy, and refuse links and anything but a regular file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import threading
from typing import IO, Any
from urllib.parse import quote

from ..errors import InvalidSpecError, NotFoundError
from ..store.artifacts import _CHUNK, _KEY_RE, ArtifactStore

_OBJECT_RE = re.compile(r"objects/([0-9a-f]{2})/([0-9a-f]{62})((?:\.[A-Za-z0-9_-]{1,16}){0,2})$")


def owner_folder(owner: str) -> str:
    """A folder name for ``owner`` that is one path segment on any filesystem."""
    if not owner:
        raise InvalidSpecError("an owner name is needed; got an empty one")
    # quote() leaves letters, digits and "_.-~"; a leading dot would hide or escape the folder.
    name = quote(owner, safe="")
    return "%2E" + name[1:] if name.startswith(".") else name


def private_dir(path: str | os.PathLike[str]) -> str:
    """``path`` as a folder only this process's user can use (made, mode 0700, if missing).

    Raises
    ------
    InvalidSpecError
        ``path`` is a link, not a folder, or belongs to another user.
    """
    path = os.path.abspath(os.fspath(path))
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise InvalidSpecError(f"{path} must be a folder of this user, not a link or another "
                               "user's folder: it holds copies of users' artifacts")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def default_cache_dir(root: str) -> str:
    """A cache folder for the shared store at ``root``, under this process's data dir."""
    from ..config import data_dir

    tag = hashlib.sha256(root.encode()).hexdigest()[:16]
    return str(data_dir() / "artifact-cache" / tag)


class OwnerArtifactStore(ArtifactStore):
    """One owner's folder of the shared store; nothing read from disk is taken on trust."""

    def local_path(self, uri: str) -> str:
        """A local file holding the object (see ``ArtifactStore.local_path``); a cached copy
        that is a link, not a regular file, or not the content its address names is fetched
        again."""
        key, _ = self._resolve(uri)
        if self.is_local:
            path = super().local_path(uri)
            _regular(path, uri)
            return path
        cached = os.path.join(self._cache_root(), *key.split("/"))
        if os.path.lexists(cached) and not _holds(cached, _sha_of(key)):
            with contextlib.suppress(FileNotFoundError):  # another thread was first
                os.unlink(cached)
        return super().local_path(uri)

    def _cache_root(self) -> str:
        if self._cache_dir is None:
            raise InvalidSpecError("an owner's artifact store needs a private cache folder")
        return private_dir(self._cache_dir)

    def open_object(self, uri: str) -> IO[bytes]:
        """The object's bytes, read from the store itself (not a cache).

        Raises
        ------
        NotFoundError
            Not an object of this owner, missing, a link, or not a regular file.
        """
        key, path = self._resolve(uri)
        if not self.is_local:
            return self.open(uri, "rb")  # type: ignore[return-value]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFoundError(f"artifact {uri!r} does not exist") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NotFoundError(f"artifact {uri!r} is a link, not an object") from None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise NotFoundError(f"artifact {uri!r} is not a regular file")
        return os.fdopen(fd, "rb")


def open_object(store: OwnerArtifactStore, uri: str) -> IO[bytes]:
    """``store.open_object(uri)`` (for a thread pool)."""
    return store.open_object(uri)


def _sha_of(key: str) -> str:
    m = _KEY_RE.match(key)
    assert m is not None  # _resolve returns well-formed keys only
    return m.group(1) + m.group(2)


def _regular(path: str, uri: str) -> None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise NotFoundError(f"artifact {uri!r} is not a regular file")


def _holds(path: str, sha256: str) -> bool:
    """Whether ``path`` is a regular file (not a link) whose content hashes to ``sha256``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return False
        digest = hashlib.sha256()
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest() == sha256


class OwnerArtifacts:
    """The per-owner artifact stores under one root.

    Parameters
    ----------
    root : str
        fsspec URL or local folder of the shared artifact store.
    storage_options : dict, optional
        Passed to fsspec (credentials, endpoint).
    cache_dir : str, optional
        This process's private folder for copies of remote objects (made with mode 0700);
        default ``<jupyter data dir>/mlplat/artifact-cache/<hash of root>``.
    """

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None,
                 cache_dir: str | None = None) -> None:
        self.root = root.rstrip("/") if "://" in root else root
        self.storage_options = storage_options
        self.cache_dir = cache_dir or default_cache_dir(self.root)
        self._stores: dict[str, OwnerArtifactStore] = {}
        self._lock = threading.Lock()

    def store(self, owner: str) -> OwnerArtifactStore:
        """``owner``'s artifact store (made on first use)."""
        with self._lock:
            found = self._stores.get(owner)
            if found is None:
                folder = owner_folder(owner)
                found = self._stores[owner] = OwnerArtifactStore(
                    f"{self.root}/users/{folder}", storage_options=self.storage_options,
                    cache_dir=os.path.join(self.cache_dir, folder))
            return found

    def uri_prefix(self, owner: str) -> str:
        """What every URI of ``owner``'s objects starts with (``...users/<owner>/``)."""
        probe = self.store(owner).uri_for("0" * 64, "")
        return probe[: -len("objects/00/" + "0" * 62)]

    def owner_of(self, uri: Any) -> str | None:
        """The owner whose folder ``uri`` names (``...users/<owner>/objects/...``), or None."""
        from urllib.parse import unquote

        if not isinstance(uri, str):
            return None
        users = self.uri_prefix("x")[: -len("x/")]
        if not uri.startswith(users):
            return None
        folder = uri[len(users):].split("/", 1)[0]
        owner = unquote(folder)
        if not owner or owner_folder(owner) != folder:
            return None
        prefix = self.uri_prefix(owner)
        return owner if uri.startswith(prefix) and _OBJECT_RE.match(uri[len(prefix):]) else None

    def check_ref(self, owner: str, uri: Any, sha256: Any = None) -> None:
        """Refuse ``uri`` unless it is an object of ``owner``'s store that exists (and whose
        content address is ``sha256`` when given): a client may record only what it uploaded."""
        if not isinstance(uri, str):
            raise InvalidSpecError(f"an artifact URI must be a string; got {type(uri).__name__}")
        store = self.store(owner)
        match = _OBJECT_RE.search(uri)
        if match is None or not store.exists(uri):
            raise NotFoundError(f"no artifact {uri!r} in your artifact store; store artifacts "
                                "through the store service before recording them")
        sha = match.group(1) + match.group(2)
        if uri != store.uri_for(sha, match.group(3)):
            raise NotFoundError(f"no artifact {uri!r} in your artifact store")
        if sha256 is not None and sha256 != sha:
            raise InvalidSpecError(f"artifact {uri!r} holds content {sha}, not {sha256!r}")
