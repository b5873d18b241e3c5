"""Run first in every kernel a scheduler for several owners starts (its folder leads the
kernel's ``PYTHONPATH``): the kernel makes itself non-dumpable, so the kernels of other owners,
which run as the same OS user, can read neither its environment (its owner's short-lived store
token) nor its memory. Linux only; elsewhere, and if it fails, nothing changes."""

import sys

if sys.platform.startswith("linux"):
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except Exception:  # noqa: BLE001 - the kernel must start whatever happens here
        pass
