"""Paths from requests, resolved inside the server's root directory and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from ..errors import InvalidSpecError


def resolve_in_root(root: str | os.PathLike[str], path: str) -> Path:
    """The real location of ``path`` (relative to ``root``), refused unless it is inside ``root``.

    Parameters
    ----------
    root : path
        The server's root directory (``ServerApp.root_dir``).
    path : str
        A path as the file browser shows it: relative, ``/`` separated.

    Returns
    -------
    Path
        The resolved path (symlinks followed), which lies inside the resolved ``root``. It may
        not exist: reading it is the caller's business (and a missing file its 404).

    Raises
    ------
    InvalidSpecError
        An empty path, an absolute one, one with a ``..`` part or a NUL byte, or one whose
        symlinks lead out of ``root``. Nothing outside ``root`` is touched to decide it.
    """
    if not isinstance(path, str) or not path.strip():
        raise InvalidSpecError("expected a notebook path relative to the server root; got an "
                               "empty one")
    if "\x00" in path:
        raise InvalidSpecError("the path contains a NUL byte")
    text = path.replace("\\", "/")
    parts = PurePosixPath(text).parts
    if text.startswith("/") or PurePosixPath(text).is_absolute() or (
            len(text) > 1 and text[1] == ":"):
        raise InvalidSpecError(f"expected a path relative to the server root; got the absolute "
                               f"path {path!r}")
    if ".." in parts:
        raise InvalidSpecError(f"'..' is not allowed in paths (got {path!r}); give the path "
                               "relative to the server root")
    base = Path(root).resolve()
    candidate = base.joinpath(*parts)
    # Follow symlinks part by part: any that leads out of the root is refused.
    resolved = candidate.resolve()
    if resolved != base and base not in resolved.parents:
        raise InvalidSpecError(f"{path!r} leads outside the server root (through a symlink); "
                               "expected a file inside it")
    return resolved


def is_in_root(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (absolute, e.g. a run's stored notebook path), with its symlinks
    followed, lies inside ``root``."""
    base = Path(root).resolve()
    resolved = Path(path).resolve()
    return resolved == base or base in resolved.parents
