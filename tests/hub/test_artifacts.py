"""The owners' artifact stores of the hub services: nothing another local account can plant is
served or loaded (a shared, predictable cache; links at an object's place)."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import uuid
from pathlib import Path

import pytest

from jupyter_mlplat.errors import InvalidSpecError, NotFoundError
from jupyter_mlplat.hub.artifacts import OwnerArtifacts, private_dir

DATA = b"alice's model weights"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "mlplat.db"
    path.write_bytes(b"every user's rows")
    return path


def _old_shared_cache(store, key: str) -> Path:
    """Where the copy of a remote object went before: a folder under /tmp that anyone on the
    machine can create first."""
    tag = hashlib.sha256(store.fs.unstrip_protocol(store.root).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir(), "mlplat-artifacts", tag, *key.split("/"))


def test_a_link_planted_in_the_old_shared_cache_is_never_used(secret: Path) -> None:
    artifacts = OwnerArtifacts(f"memory://shared-{uuid.uuid4().hex}")
    alice = artifacts.store("alice")
    info = alice.put_bytes(DATA, ".bin")
    planted = _old_shared_cache(alice, alice.key_for(info.sha256, ".bin"))
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.unlink(missing_ok=True)
    planted.symlink_to(secret)  # another local user got there first
    try:
        path = alice.local_path(info.uri)
        assert Path(path).read_bytes() == DATA
        # the copy is in this process's own folder, which only its user may enter
        assert not path.startswith(tempfile.gettempdir() + "/mlplat-artifacts")
        assert stat.S_IMODE(os.stat(artifacts.cache_dir + "/alice").st_mode) == 0o700
    finally:
        planted.unlink()


def test_a_tampered_cached_copy_is_fetched_again(tmp_path: Path, secret: Path) -> None:
    artifacts = OwnerArtifacts(f"memory://shared-{uuid.uuid4().hex}",
                               cache_dir=str(tmp_path / "cache"))
    alice = artifacts.store("alice")
    info = alice.put_bytes(DATA, ".bin")
    cached = Path(alice.local_path(info.uri))
    for tamper in ("link", "content"):
        cached.unlink()
        if tamper == "link":
            cached.symlink_to(secret)
        else:
            cached.write_bytes(b"swapped model")
        assert Path(alice.local_path(info.uri)).read_bytes() == DATA
        assert not cached.is_symlink()


def test_downloads_refuse_links_at_an_objects_place(tmp_path: Path, secret: Path) -> None:
    artifacts = OwnerArtifacts(str(tmp_path / "artifacts"), cache_dir=str(tmp_path / "cache"))
    bob = artifacts.store("bob")
    mine = bob.put_bytes(b"bob's own", ".bin")
    with bob.open_object(mine.uri) as f:
        assert f.read() == b"bob's own"
    # a link put where an object of bob's would be (by anyone who could write there)
    fake = bob.uri_for(hashlib.sha256(b"x").hexdigest(), ".bin")
    os.makedirs(os.path.dirname(fake), exist_ok=True)
    os.symlink(secret, fake)
    with pytest.raises(NotFoundError, match="is a link"):
        bob.open_object(fake)
    with pytest.raises(NotFoundError, match="not a regular file"):
        bob.local_path(fake)
    with pytest.raises(NotFoundError):  # and nothing outside bob's folder
        bob.open_object(str(secret))


def test_remote_roots_stream_from_the_store_not_a_cache(tmp_path: Path) -> None:
    artifacts = OwnerArtifacts(f"memory://shared-{uuid.uuid4().hex}",
                               cache_dir=str(tmp_path / "cache"))
    alice = artifacts.store("alice")
    info = alice.put_bytes(DATA, ".bin")
    with alice.open_object(info.uri) as f:
        assert f.read() == DATA
    assert not (tmp_path / "cache").exists()  # nothing was copied to serve it


def test_private_folders(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    os.chmod(loose, 0o777)
    assert private_dir(loose) == str(loose)
    assert stat.S_IMODE(os.stat(loose).st_mode) == 0o700
    link = tmp_path / "link"
    link.symlink_to(loose)
    with pytest.raises(InvalidSpecError, match="not a link"):
        private_dir(link)
