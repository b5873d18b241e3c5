"""What goes into versions besides code: the kernel environment, and the pipeline spec itself."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from .spec import PipelineSpec, sha256_json

ENV_PACKAGES = ("numpy", "pandas", "scikit-learn", "torch", "pyarrow", "skops", "cloudpickle")

_VERSIONS_PROBE = (
    "import importlib.metadata as m, json, sys\n"
    "def v(n):\n"
    "    try:\n        return m.version(n)\n"
    "    except m.PackageNotFoundError:\n        return None\n"
    "print(json.dumps({'python': list(sys.version_info[:3]), "
    "'packages': {n: v(n) for n in sys.argv[1:]}}))"
)
_FINGERPRINTS: dict[str, tuple[float, str]] = {}
FINGERPRINT_TTL = 60.0  # a long-lived process notices a package upgrade within a minute


def kernel_interpreter(kernel_name: str) -> str:
    """The Python a kernel spec runs (``python``/``python3`` mean this one, as in jupyter_client)."""
    import json

    from jupyter_core.paths import jupyter_path

    here = {"python", f"python{sys.version_info[0]}",
            f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    for root in jupyter_path("kernels"):
        path = os.path.join(root, kernel_name, "kernel.json")
        if os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    argv = json.load(f).get("argv") or ["python"]
            except (OSError, ValueError):
                return sys.executable
            return sys.executable if argv[0] in here else argv[0]
    return sys.executable  # ipykernel's built-in python3 spec


def env_fingerprint(kernel_name: str) -> str:
    """Kernel name, its Python and key package versions *in the kernel's environment*: part of
    every step version, so an upgrade of numpy where the steps run invalidates their cache."""
    now = time.monotonic()
    cached = _FINGERPRINTS.get(kernel_name)
    if cached is not None and now - cached[0] < FINGERPRINT_TTL:
        return cached[1]
    exe = kernel_interpreter(kernel_name)
    if os.path.realpath(exe) == os.path.realpath(sys.executable):
        from importlib import metadata

        packages = {}
        for name in ENV_PACKAGES:
            try:
                packages[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                packages[name] = None
        env: dict[str, Any] = {"python": list(sys.version_info[:3]), "packages": packages}
    else:  # another environment: ask its interpreter
        import json
        import subprocess

        try:
            out = subprocess.run([exe, "-c", _VERSIONS_PROBE, *ENV_PACKAGES], capture_output=True,
                                 text=True, timeout=60, check=True)
            env = json.loads(out.stdout)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            env = {"interpreter": exe, "unknown": type(exc).__name__}
    value = sha256_json({"kernel": kernel_name, **env})
    _FINGERPRINTS[kernel_name] = (now, value)
    return value


def default_kernel_name(configured: str = "") -> str:
    """The configured kernel, else mlplat-python3 when installed, else python3."""
    if configured:
        return configured
    from jupyter_core.paths import jupyter_path

    for root in jupyter_path("kernels"):
        if os.path.exists(os.path.join(root, "mlplat-python3", "kernel.json")):
            return "mlplat-python3"
    return "python3"


def pipeline_version(spec: PipelineSpec) -> str:
    """The hash of everything the spec says (path, cells, edges, options): the stored spec that
    ``resume`` runs is exactly the one the run started with."""
    return sha256_json(spec.to_dict())
