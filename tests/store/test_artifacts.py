"""ArtifactStore: content addressing, atomic writes, local and remote (memory://) roots."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import fsspec
import pytest

from jupyter_mlplat.errors import NotFoundError, SerializationError
from jupyter_mlplat.store import artifacts
from jupyter_mlplat.store.artifacts import ArtifactStore, atomic_write


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def remote(tmp_path: Path):
    url = f"memory://mlplat-test-{os.getpid()}-{tmp_path.name}"
    s = ArtifactStore(url, cache_dir=str(tmp_path / "cache"))
    yield s
    fsspec.filesystem("memory").rm(s.root, recursive=True)


def test_put_bytes_is_content_addressed(store: ArtifactStore, tmp_path: Path) -> None:
    data = b"hello artifacts"
    sha = hashlib.sha256(data).hexdigest()
    info = store.put_bytes(data, ".json")
    assert info.sha256 == sha and info.size == len(data)
    assert info.uri == os.path.join(store.root, "objects", sha[:2], sha[2:] + ".json")
    assert info.uri == store.uri_for(sha, ".json") == store.uri_for(sha, "json")
    assert Path(info.uri).read_bytes() == data
    assert store.exists(info.uri) and store.read_bytes(info.uri) == data
    assert store.local_path(info.uri) == info.uri
    with store.open(info.uri) as f:
        assert f.read() == data
    with store.open(info.uri, "r") as f:
        assert f.read() == data.decode()


def test_same_content_one_object_different_content_another(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 3_000_000)  # more than one copy chunk
    first = store.put_file(src, ".npy")
    assert first.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert first.size == 3_000_000

    # The second put must not rewrite the object: a rename would fail here.
    def no_replace(*args: object) -> None:
        raise AssertionError("existing object rewritten")

    monkeypatch.setattr(artifacts.os, "replace", no_replace)
    assert store.put_file(src, ".npy") == first
    assert store.put_bytes(src.read_bytes(), ".npy") == first
    monkeypatch.undo()

    other = store.put_bytes(b"y", ".npy")
    assert other.sha256 != first.sha256
    assert _files(Path(store.root)) == sorted(
        [
            os.path.relpath(first.uri, store.root),
            os.path.relpath(other.uri, store.root),
        ]
    )


def test_concurrent_puts_of_the_same_bytes(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(200_000))
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(store.put_file(src, ".bin")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.uri for r in results}) == 1 and len(results) == 8
    assert _files(Path(store.root)) == [os.path.relpath(results[0].uri, store.root)]


@pytest.mark.parametrize("how", ["put_file", "put_bytes"])
def test_failed_rename_leaves_no_object_and_no_temp(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload" * 1000)

    def failing_replace(a: object, b: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(artifacts.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        if how == "put_file":
            store.put_file(src, ".bin")
        else:
            store.put_bytes(src.read_bytes(), ".bin")
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    assert not store.exists(store.uri_for(sha, ".bin"))
    assert _files(Path(store.root)) == []
    monkeypatch.undo()
    assert store.exists(store.put_file(src, ".bin").uri)  # and a retry works


def test_failed_copy_leaves_no_temp(
    store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError("I/O error")

    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    monkeypatch.setattr(artifacts.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="I/O error"):
        store.put_file(src, ".bin")
    assert _files(Path(store.root)) == []


def test_roots_paths_and_file_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rel = ArtifactStore("rel/store")
    assert rel.root == str(tmp_path / "rel" / "store") and Path(rel.root).is_dir()
    url = ArtifactStore(f"file://{tmp_path}/viaurl")
    info = url.put_bytes(b"z", ".txt")
    assert info.uri.startswith(str(tmp_path / "viaurl")) and Path(info.uri).exists()
    # the same object, named by a file:// URL, resolves too
    assert url.exists("file://" + info.uri) and url.read_bytes("file://" + info.uri) == b"z"


def test_uris_outside_the_store_are_refused(store: ArtifactStore, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("nope")
    info = store.put_bytes(b"ok", ".txt")
    sneaky = os.path.join(store.root, "objects", "..", "..", "secret.txt")
    for uri in (str(secret), sneaky, os.path.join(store.root, "objects", "zz", "notakey")):
        assert not store.exists(uri)
        with pytest.raises(NotFoundError):
            store.read_bytes(uri)
        with pytest.raises(NotFoundError):
            store.local_path(uri)
    missing = store.uri_for("0" * 64, ".txt")
    assert not store.exists(missing)
    with pytest.raises(NotFoundError):
        store.open(missing)
    with pytest.raises(NotFoundError):
        store.local_path(missing)
    with pytest.raises(ValueError):
        store.open(info.uri, "wb")
    with pytest.raises(ValueError):
        store.uri_for("not-a-sha", ".txt")
    with pytest.raises(ValueError):
        store.put_bytes(b"x", "../../evil")


def test_atomic_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "sub" / "state.json"
    atomic_write(target, '{"a": 1}')
    assert target.read_text() == '{"a": 1}'
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second"

    def failing_replace(a: object, b: object) -> None:
        raise OSError("boom")

    monkeypatch.setattr(artifacts.os, "replace", failing_replace)
    with pytest.raises(OSError):
        atomic_write(target, b"third")
    assert target.read_bytes() == b"second"
    assert _files(tmp_path) == ["sub/state.json"]


def test_remote_store_roundtrip_and_cache(remote: ArtifactStore, tmp_path: Path) -> None:
    assert not remote.is_local
    src = tmp_path / "src.bin"
    src.write_bytes(b"remote bytes" * 100)
    info = remote.put_file(src, ".parquet")
    assert info.uri.startswith("memory://") and remote.exists(info.uri)
    assert remote.read_bytes(info.uri) == src.read_bytes()
    assert remote.put_bytes(src.read_bytes(), ".parquet") == info
    local = remote.local_path(info.uri)
    assert (
        local.startswith(str(tmp_path / "cache")) and Path(local).read_bytes() == src.read_bytes()
    )
    assert remote.local_path(info.uri) == local  # cached
    assert [p.name for p in (tmp_path / "cache").rglob("*") if p.is_file()] == [Path(local).name]
    remote.clear_cache()
    assert not Path(local).exists()


def test_remote_download_is_checked(remote: ArtifactStore, tmp_path: Path) -> None:
    info = remote.put_bytes(b"genuine", ".bin")
    remote.fs.pipe_file(remote.fs._strip_protocol(info.uri), b"tampered")
    with pytest.raises(SerializationError, match="corrupt"):
        remote.local_path(info.uri)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    with pytest.raises(NotFoundError):
        remote.local_path(remote.uri_for("1" * 64, ".bin"))


def test_remote_failed_move_leaves_nothing(
    remote: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_mv(*args: object, **kwargs: object) -> None:
        raise OSError("network down")

    monkeypatch.setattr(remote.fs, "mv", failing_mv)
    src = tmp_path / "src.bin"
    src.write_bytes(b"data")
    with pytest.raises(OSError, match="network down"):
        remote.put_file(src, ".bin")
    with pytest.raises(OSError, match="network down"):
        remote.put_bytes(b"more", ".bin")
    assert remote.fs.find(remote.root) == []
