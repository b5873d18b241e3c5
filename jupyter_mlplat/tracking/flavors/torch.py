"""``torch.nn.Module`` models: TorchScript, or ``torch.export`` when TorchScript cannot.

Saving tries, in order:

1. ``torch.jit.script``: compiles ``forward`` with its control flow; exact.
2. ``torch.jit.trace`` on the sample input: records the operations one call ran, so
   data-dependent branches and shapes are frozen; :func:`~jupyter_mlplat.tracking.flavors.
   save_model` catches the resulting differences by checking the copy on the sample and on
   single rows of it (:meth:`TorchFlavor.compare`).
3. ``torch.export`` (``torch.export.save``) with a dynamic batch dimension.

A module is never pickled. TorchScript files load with ``torch.jit.load``, which reads its own
archive format and no Python pickle; anything else given as TorchScript is refused before it is
opened by torch. ``torch.export.load`` unpickles with ``weights_only=False``, so exported
programs are trusted-only.

Both forms are trusted-only. A TorchScript program is code: it may call any registered torch
operator, and some of them touch the file system (``torch.from_file`` reads any file the
loading process can read, and a model that returns its bytes hands them to whoever calls it).
Only a process that trusts the producer (the model's owner, ``trusted=True``) loads either form;
anyone else, such as a serve process shared by several users, refuses before torch opens the
file. In torch 2.13 every ``torch.jit`` entry point emits a
DeprecationWarning (TorchScript is deprecated upstream in favour of ``torch.export``); they are
silenced around our own calls only.

Predictions: the module is put in eval mode and run under ``torch.no_grad()``. Numpy arrays,
DataFrames and lists become tensors of ``meta["input_dtype"]`` (the sample's dtype when it was
a tensor, else float32). ``task`` says what the output is: ``classification`` (logits:
``predict`` is the argmax over dim 1, ``predict_proba`` the softmax) or ``regression`` (the
output, squeezed to 1-d when it has one column); None infers it from the output (2-D with more
than one column: classification).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any

from jupyter_mlplat.errors import InvalidSpecError, SerializationError, UnsafeArtifactError
from jupyter_mlplat.tracking.flavors.base import TASKS, BaseFlavor, describe_difference

#: Tolerances for the save-time check: the copy runs the same kernels, so differences are
#: only reassociation noise.
RTOL, ATOL = 1e-5, 1e-6
#: Rows of the sample that the save-time check also runs one at a time.
_SINGLE_ROWS = 8


@contextlib.contextmanager
def _quiet_deprecations() -> Iterator[None]:
    # torch.jit.* are deprecated in torch >= 2.10; our use of them is deliberate.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


class TorchFlavor(BaseFlavor):
    """``torch.nn.Module``: TorchScript (script, then trace) or ``torch.export``."""

    name = "torch"
    # TorchScript can call file-reading operators (torch.from_file): never loaded untrusted.
    trusted_only = True
    formats = ("torchscript", "torch_export")
    priority = 20

    def matches(self, model: Any) -> bool:
        """Whether ``model`` is a ``torch.nn.Module`` (without importing torch)."""
        torch = sys.modules.get("torch")
        return torch is not None and isinstance(model, torch.nn.Module)

    # -- save ----------------------------------------------------------------------------------

    def save(
        self, model: Any, path: str, sample_input: Any, *, task: str | None = None
    ) -> dict[str, Any]:
        """Write ``model`` as TorchScript or an exported program; see :meth:`BaseFlavor.save`.

        Raises
        ------
        SerializationError
            Scripting failed and there is no sample input to trace or export with, or all
            three ways failed (each failure is in the message).
        """
        import torch

        if task is not None and task not in TASKS:
            raise InvalidSpecError(f"task must be one of {list(TASKS)} or None, not {task!r}")
        input_dtype = _sample_dtype(sample_input, model)
        meta: dict[str, Any] = {"input_dtype": input_dtype, "training": bool(model.training)}
        example = None
        if sample_input is not None:
            example = _to_tensor(sample_input, input_dtype, _device_of(model))
            if not example.is_floating_point() and not isinstance(sample_input, torch.Tensor):
                # integer data may be indices (an embedding) or plain numbers for a linear
                # layer: keep the integers only when the module takes them
                try:
                    with _eval_mode(model), torch.no_grad():
                        _forward(model, example)
                except Exception:  # noqa: BLE001 - it wants floats
                    input_dtype = _sample_dtype(None, model)
                    example = _to_tensor(sample_input, input_dtype, _device_of(model))
                meta["input_dtype"] = input_dtype
        failures: list[str] = []
        was_training = model.training
        model.eval()  # trace and export record the mode they run in; serving wants eval
        try:
            with _quiet_deprecations():
                method = self._save_script(model, path, failures)
                if method is None and example is not None:
                    method = self._save_trace(model, example, path, failures, meta)
                if method is None and example is not None:
                    method = self._save_export(model, example, path, failures)
        finally:
            model.train(was_training)
        if method is None:
            if example is None:
                failures.append("tracing and torch.export need a sample input: pass sample_input=")
            raise SerializationError(
                "cannot save the torch module (modules are never pickled): " + "; ".join(failures)
            )
        meta["method"] = method
        meta["format"] = "torch_export" if method == "export" else "torchscript"
        # torch.export.load unpickles with weights_only=False; TorchScript runs operators
        # that read files (torch.from_file): both are for a loader that trusts the producer
        meta["trusted_only"] = True
        if task is None and example is not None:
            with _eval_mode(model), torch.no_grad():
                out = _forward(model, example)
            task = "classification" if out.ndim == 2 and out.shape[1] > 1 else "regression"
        meta["task"] = task
        return meta

    @staticmethod
    def _save_script(model: Any, path: str, failures: list[str]) -> str | None:
        import torch

        try:
            torch.jit.save(torch.jit.script(model), path)
        except Exception as exc:  # noqa: BLE001 - scripting fails in many ways
            failures.append(f"torch.jit.script failed: {type(exc).__name__}: {_short(exc)}")
            return None
        return "script"

    @staticmethod
    def _save_trace(
        model: Any, example: Any, path: str, failures: list[str], meta: dict[str, Any]
    ) -> str | None:
        import torch

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                # check_trace reruns the same input, which cannot see frozen branches;
                # save_model checks the saved copy on other batches instead
                traced = torch.jit.trace(model, example, check_trace=False)
                torch.jit.save(traced, path)
            except Exception as exc:  # noqa: BLE001
                failures.append(f"torch.jit.trace failed: {type(exc).__name__}: {_short(exc)}")
                return None
        tracer = {
            _short(w.message, 200)
            for w in caught
            if issubclass(w.category, torch.jit.TracerWarning)
        }
        if tracer:
            meta["trace_warnings"] = sorted(tracer)[:5]
        return "trace"

    @staticmethod
    def _save_export(model: Any, example: Any, path: str, failures: list[str]) -> str | None:
        import torch

        dynamic: Any = None
        if example.ndim >= 1:
            if example.shape[0] == 1:
                # export specialises a batch of one to size 1; two rows keep it dynamic
                example = torch.cat([example, example])
            dynamic = ({0: torch.export.Dim.AUTO},)
        try:
            program = torch.export.export(model, (example,), dynamic_shapes=dynamic)
            torch.export.save(program, path)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"torch.export failed: {type(exc).__name__}: {_short(exc)}")
            return None
        return "export"

    # -- load ----------------------------------------------------------------------------------

    def load(self, path: str, meta: dict[str, Any], *, trusted: bool) -> Any:
        """Read a TorchScript archive or an exported program; both for a trusted producer only.

        Returns a ``torch.jit.ScriptModule`` or a ``torch.fx.GraphModule``, on the CPU unless
        CUDA is available. With ``trusted=False`` either is refused before torch opens the file
        (:class:`UnsafeArtifactError`).
        """
        fmt = meta.get("format", "torchscript")
        if not trusted:
            why = ("torch.export programs are loaded with pickle (weights_only=False)"
                   if fmt == "torch_export" else
                   "TorchScript programs may call torch operators that read files "
                   "(torch.from_file reads any file this process can read)")
            raise UnsafeArtifactError(
                f"torch models are trusted-only: {why}, which is allowed only for a producer "
                "you trust (a serve process of the model's owner); nothing was loaded"
            )
        if fmt == "torch_export":
            import torch

            with _quiet_deprecations():
                return torch.export.load(path).module()
        if fmt != "torchscript":
            raise SerializationError(f"the torch flavour does not read format {fmt!r}")
        _require_torchscript_archive(path)
        from jupyter_mlplat.pipeline.formats.tensors import read_torchscript

        return read_torchscript(path)

    # -- predict -------------------------------------------------------------------------------

    def _outputs(self, model: Any, X: Any, meta: dict[str, Any] | None) -> tuple[Any, str]:
        import torch

        meta = meta or {}
        x = _to_tensor(X, meta.get("input_dtype") or "float32", _device_of(model))
        with _eval_mode(model), torch.no_grad():
            out = _forward(model, x)
        task = meta.get("task")
        if task is None:
            task = "classification" if out.ndim == 2 and out.shape[1] > 1 else "regression"
        return out, task

    def predict(self, model: Any, X: Any, *, meta: dict[str, Any] | None = None) -> Any:
        """Class indices (classification) or values (regression), as a numpy array."""
        out, task = self._outputs(model, X, meta)
        if task == "classification":
            return out.argmax(dim=1).cpu().numpy()
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        return _numpy(out)

    def predict_proba(
        self, model: Any, X: Any, *, meta: dict[str, Any] | None = None
    ) -> Any | None:
        """The softmax of the logits for a classifier; None for a regressor."""
        out, task = self._outputs(model, X, meta)
        if task != "classification":
            return None
        return _numpy(out.float().softmax(dim=1))

    def compare(
        self, original: Any, loaded: Any, X: Any, *, meta: dict[str, Any] | None = None
    ) -> str | None:
        """Compare raw outputs (allclose, ``RTOL``/``ATOL``) on ``X``, on its first rows one at a
        time and on all rows but the last: a traced or exported copy differs from the module
        exactly where the batch's values or size would have taken another path."""
        import numpy as np
        import torch

        meta = meta or {}
        dtype = meta.get("input_dtype") or "float32"
        full = _to_tensor(X, dtype, torch.device("cpu"))
        batches = [("the sample input", full)]
        if full.ndim >= 1 and full.shape[0] > 1:
            n = int(full.shape[0])
            batches += [(f"row {i} alone", full[i : i + 1]) for i in range(min(n, _SINGLE_ROWS))]
            if n > 2:
                batches.append((f"the first {n - 1} rows", full[: n - 1]))
        for label, batch in batches:
            try:
                want = self._raw(original, batch)
            except Exception:  # noqa: BLE001 - the module itself cannot take this batch size
                continue
            try:
                got = self._raw(loaded, batch)
            except Exception as exc:  # noqa: BLE001
                return f"on {label}, the saved copy fails: {type(exc).__name__}: {_short(exc)}"
            diff = describe_difference(np.asarray(want), np.asarray(got), rtol=RTOL, atol=ATOL)
            if diff:
                return f"outputs differ on {label}: {diff}"
        return None

    @staticmethod
    def _raw(model: Any, x: Any) -> Any:
        import torch

        with _eval_mode(model), torch.no_grad():
            return _numpy(_forward(model, x.to(_device_of(model))))


# -- helpers -----------------------------------------------------------------------------------


def _short(exc: Any, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else "")[:limit]


def _sample_dtype(sample_input: Any, model: Any) -> str:
    """The dtype inputs are given to the module in: a tensor's own; integer and boolean arrays
    keep theirs (indices for an embedding); floating data takes the parameters' dtype."""
    import numpy as np
    import torch

    if isinstance(sample_input, torch.Tensor):
        return str(sample_input.dtype).removeprefix("torch.")
    params = next(iter(model.parameters()), None)
    floating = str(params.dtype).removeprefix("torch.") if params is not None else "float32"
    if sample_input is None:
        return floating
    try:
        values = (sample_input.to_numpy() if hasattr(sample_input, "to_numpy")
                  else np.asarray(sample_input))
    except (TypeError, ValueError):
        return floating
    if values.dtype.kind in "iu":
        return str(values.dtype)
    if values.dtype.kind == "b":
        return "bool"
    return floating


def _forward(model: Any, x: Any) -> Any:
    import torch

    out = model(x)
    if not isinstance(out, torch.Tensor):
        raise InvalidSpecError(
            f"the torch flavour needs forward() to return one tensor, not {type(out).__name__}"
        )
    return out


def _numpy(t: Any) -> Any:
    import torch

    t = t.detach().cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Eval mode for the call, then the caller's mode back (a notebook keeps training)."""
    was = getattr(model, "training", False)
    try:
        model.eval()
    except NotImplementedError:  # exported GraphModules were captured in eval mode already
        yield
        return
    try:
        yield
    finally:
        model.train(was)


def _device_of(model: Any) -> Any:
    import torch

    for tensors in (model.parameters(), model.buffers()):
        for t in tensors:
            return t.device
    return torch.device("cpu")


def _to_tensor(X: Any, dtype: str, device: Any) -> Any:
    """``X`` as a tensor of ``dtype`` on ``device``."""
    import numpy as np
    import torch

    target = getattr(torch, dtype, None)
    if not isinstance(target, torch.dtype):
        raise InvalidSpecError(f"unknown torch dtype {dtype!r}")
    if isinstance(X, torch.Tensor):
        return X.to(device=device, dtype=target)
    if hasattr(X, "to_numpy"):  # DataFrame / Series
        X = X.to_numpy()
    np_dtype = (
        np.float32 if target == torch.bfloat16 else torch.empty(0, dtype=target).numpy().dtype
    )
    try:
        arr = np.asarray(X, dtype=np_dtype)
    except (TypeError, ValueError) as exc:
        from jupyter_mlplat.errors import SignatureError

        raise SignatureError(f"torch models take numeric input convertible to {dtype}: {exc}")
    return torch.from_numpy(np.ascontiguousarray(arr)).to(device=device, dtype=target)


def _require_torchscript_archive(path: str) -> None:
    """Refuse anything that is not a TorchScript zip archive before torch opens it: a plain
    pickle or a ``torch.save`` checkpoint must never reach a loader that could unpickle it."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnsafeArtifactError(
            f"not a TorchScript archive ({exc}); it was not opened by torch; nothing was loaded"
        ) from exc
    if not (any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)):
        raise UnsafeArtifactError(
            "not a TorchScript archive (no code/ or constants.pkl: a torch.save checkpoint or "
            "other zip); it was not opened by torch; nothing was loaded"
        )
