"""What a scheduler lets a firing run: a notebook inside its owner's home, an allowed kernel.

Under JupyterHub a schedule's notebook is stored as a path relative to its owner's home (the
root of the owner's server; the store service refuses anything else), and the scheduler that
fires it runs as a hub service for every owner. It finds the home from a template
(``--homes /home/{username}``, what the spawner uses), resolves the path inside it, and refuses
one that leads out of it (``..``, an absolute path elsewhere, a symbolic link to another
user's files). A firing refused here fails with the reason on the firing; nothing runs.

``kernels`` is the allow-list the runner checks when a firing starts (a notebook names its own
kernel in its metadata and can be changed after the schedule was made): a scheduler for several
owners runs only those (``--kernels``, by default the store service's default list).
"""

from __future__ import annotations

import string
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidSpecError


def check_homes_template(template: str) -> str:
    """``template`` once it is an absolute path with one ``{username}`` field and no other.

    Raises
    ------
    InvalidSpecError
        A relative path, no ``{username}``, or another format field.
    """
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as exc:
        raise InvalidSpecError(f"homes template {template!r} is malformed ({exc}); expected "
                               "e.g. '/home/{username}'") from None
    if fields != ["username"] or not Path(template.format(username="x")).is_absolute():
        raise InvalidSpecError(f"homes template {template!r}: expected an absolute path with "
                               "one {username} field and no other, e.g. '/home/{username}'")
    return template


@dataclass(frozen=True)
class FiringGuard:
    """Where owners' notebooks may be and which kernels may run them.

    Parameters
    ----------
    homes : str, optional
        Template of an owner's home, e.g. ``/home/{username}``: relative notebook paths are
        resolved inside it and absolute ones must lead into it. None: absolute paths are used
        as they are, relative ones are refused (a scheduler for one owner, whose schedules the
        owner's own server or CLI made).
    kernels : collection of str, optional
        Kernel names a firing may use; None: any installed kernel.
    """

    homes: str | None = None
    kernels: frozenset[str] | None = None

    @classmethod
    def build(cls, homes: str | None, kernels: Collection[str] | None) -> FiringGuard:
        """Checked settings (an empty kernel list is refused: nothing could run)."""
        allowed = None
        if kernels is not None:
            allowed = frozenset(k.strip() for k in kernels if k and k.strip())
            if not allowed:
                raise InvalidSpecError("the scheduler's kernel allow-list is empty; expected "
                                       "kernel names, e.g. 'python3,mlplat-python3'")
        return cls(check_homes_template(homes) if homes else None, allowed)

    def home(self, owner: str) -> Path:
        """The resolved home folder of ``owner``.

        Raises
        ------
        InvalidSpecError
            No template, an owner name that is not one path segment, or no such folder.
        """
        if self.homes is None:
            raise InvalidSpecError("this scheduler does not know where owners' homes are; "
                                   "start it with --homes TEMPLATE (e.g. /home/{username})")
        if (not owner or owner in (".", "..") or any(c in owner for c in "/\\\x00")):
            raise InvalidSpecError(f"owner name {owner!r} cannot name a home folder")
        home = Path(self.homes.format(username=owner))
        if not home.is_dir():
            raise InvalidSpecError(f"the home folder of {owner!r} ({home}) does not exist; "
                                   "the schedule's notebook cannot be found")
        return home.resolve()

    def notebook(self, owner: str, stored: str) -> Path:
        """The notebook a schedule of ``owner`` names, as an absolute path with no symbolic
        links left, inside the owner's home when homes are known.

        Raises
        ------
        InvalidSpecError
            The path leads outside the owner's home, or is relative and no homes are known.
        """
        if not isinstance(stored, str) or not stored or "\x00" in stored:
            raise InvalidSpecError(f"the schedule's notebook path {stored!r} is not a path")
        given = Path(stored)
        if self.homes is None:
            if not given.is_absolute():
                raise InvalidSpecError(
                    f"notebook path {stored!r} is relative to its owner's home, and this "
                    "scheduler does not know where homes are; start it with --homes TEMPLATE "
                    "(e.g. /home/{username})")
            return given
        home = self.home(owner)
        path = (given if given.is_absolute() else home / given).resolve()
        if not path.is_relative_to(home):
            raise InvalidSpecError(
                f"notebook path {stored!r} leads outside the home folder of {owner!r} "
                f"({home}); the scheduler runs notebooks from inside it only")
        return path
