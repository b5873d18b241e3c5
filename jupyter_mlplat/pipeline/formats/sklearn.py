"""scikit-learn objects as skops files: canonical bytes, checked against the trusted types."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from jupyter_mlplat.errors import SerializationError, UnsafeArtifactError
from jupyter_mlplat.pipeline.formats import Fallback, Written

if TYPE_CHECKING:
    from jupyter_mlplat.pipeline.marshal import ArtifactRef


class _NoArrayBackendShims:
    """Import finder refusing sklearn's array-API shims for libraries not already imported.

    Importing ``skops.io`` lists every scikit-learn estimator, which walks and imports every
    sklearn package, among them ``sklearn.externals.array_api_compat.torch``: that imports
    torch (~190 MiB resident) into a process that may only ever serve a logistic regression.
    The walk ignores an ImportError, and the refusal lasts only for skops' import, so a later
    ``import`` of the shim (array-API dispatch on torch arrays) works as usual.
    """

    PREFIX = "sklearn.externals.array_api_compat."
    BACKENDS = frozenset({"torch", "cupy", "dask", "jax"})

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.startswith(self.PREFIX):
            library = name[len(self.PREFIX):].split(".")[0]
            if library in self.BACKENDS and library not in sys.modules:
                raise ImportError(f"{name}: not needed to read skops files")
        return None


_skops_lock = threading.Lock()


def skops_io() -> Any:
    """``skops.io``, imported without pulling in torch, cupy or dask through sklearn."""
    if "skops.io" in sys.modules:
        import skops.io

        return skops.io
    with _skops_lock:
        finder = _NoArrayBackendShims()
        sys.meta_path.insert(0, finder)
        try:
            import skops.io
        finally:
            sys.meta_path.remove(finder)
    return skops.io


def try_skops(value: Any, path: str) -> Written | None:
    """Write a scikit-learn object with skops, if it needs only the project's trusted types."""
    if not type(value).__module__.startswith("sklearn."):
        return None
    sio = skops_io()

    from jupyter_mlplat.tracking.trust import SKOPS_UNCHECKED_CONTENT_TYPES, refused_skops_types

    try:
        data = sio.dumps(value)
    except Exception as exc:  # noqa: BLE001
        raise Fallback(f"skops cannot persist it: {type(exc).__name__}: {exc}") from None
    data = canonical_skops(data)
    needed = set(sio.get_untrusted_types(data=data))
    outside = refused_skops_types(needed, include_unchecked_content=True)
    if outside:
        raise Fallback(f"skops file would need types outside the project's trusted list: {outside}")
    with open(path, "wb") as f:
        f.write(data)
    unchecked = sorted(needed & set(SKOPS_UNCHECKED_CONTENT_TYPES))
    return Written("skops", trusted_only=bool(unchecked), meta={"unchecked_types": unchecked})


def canonical_skops(data: bytes) -> bytes:
    """skops names its entries after ``id()`` of the saved objects and stamps the zip with the
    current time; renumber the ids in schema order (dropping them from immutable JSON leaves),
    and fix the timestamps, so that equal models give equal bytes. Returns ``data`` unchanged
    if the file is not laid out as expected."""
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(data))
    names = src.namelist()
    if "schema.json" not in names:
        return data
    schema = json.loads(src.read("schema.json"))
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if "__loader__" in node:
                if node["__loader__"] == "JsonNode":
                    # an immutable primitive: whether two of them were one object is noise
                    node.pop("__id__", None)
                elif type(node.get("__id__")) is int:
                    node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
                f = node.get("file")
                if isinstance(f, str) and f in names:
                    ext = os.path.splitext(f)[1]
                    node["file"] = files.setdefault(f, f"{len(files) + 1}{ext}")
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(schema)
    if set(files) != set(names) - {"schema.json"}:
        return data
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as dst:
        for old, new in files.items():
            dst.writestr(zipfile.ZipInfo(new, date_time=(1980, 1, 1, 0, 0, 0)), src.read(old))
        dst.writestr(
            zipfile.ZipInfo("schema.json", date_time=(1980, 1, 1, 0, 0, 0)),
            # compact: ``indent`` would make json use its slow pure-Python encoder (40 ms of
            # a 100-tree forest's save)
            json.dumps(schema, separators=(",", ":")),
        )
    return out.getvalue()


def load_skops(ref: ArtifactRef, path: str, allow_trusted_only: bool) -> Any:
    """Load a skops step output; see :func:`read_skops`."""
    return read_skops(path, allow_trusted_only=allow_trusted_only,
                      what=f"artifact {ref.name!r} ({ref.uri})")


def read_skops(path: str, *, allow_trusted_only: bool, what: str = "the skops file") -> Any:
    """Load a skops file, refusing types outside the trusted list before decoding any.

    ``allow_trusted_only``: the caller trusts the producer, so tree and neighbour structures
    (whose content skops cannot check) are allowed too. ``what`` names the file in errors.
    """
    sio = skops_io()
    from skops.io.exceptions import UntrustedTypesFoundException

    from jupyter_mlplat.tracking.trust import refused_skops_types

    try:
        found = set(sio.get_untrusted_types(file=path))
    except Exception as exc:  # noqa: BLE001 - a malformed file must not get further
        raise SerializationError(f"{what} is not a readable skops file: {exc}") from exc
    untrusted = refused_skops_types(found, include_unchecked_content=allow_trusted_only)
    if untrusted:
        raise _unsafe_skops(what, untrusted, allow_trusted_only)
    try:
        # exactly the checked types: skops re-audits every node against this list
        return sio.load(path, trusted=sorted(found))
    except UntrustedTypesFoundException as exc:
        raise _unsafe_skops(what, [str(exc)], allow_trusted_only) from exc


def _unsafe_skops(what: str, types_: list[str], allow_trusted_only: bool
                  ) -> UnsafeArtifactError:
    why = (
        ""
        if allow_trusted_only
        else " (tree and neighbour structures are trusted only from a producer you trust)"
    )
    return UnsafeArtifactError(
        f"{what} contains types outside the project's trusted list{why}: "
        f"{', '.join(types_)}; nothing was loaded"
    )
