"""What every benchmark here reports besides its figures: a table on the terminal, the commit it
ran at and the machine. Standard library only at module level (a benchmark's client may run this
directory's scripts in a peer's venv)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def print_table(title: str, headers: list[str], lines: list[list[str]], first_left: int = 1,
                min_width: int = 150) -> None:
    """A rich table (plain columns without rich); the first ``first_left`` columns left-aligned,
    the figures right-aligned."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(str(r[i])) for r in [headers, *lines]) for i in range(len(headers))]
        print(title)
        for line in [headers, *lines]:
            print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))
        return
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i < first_left else "right", overflow="fold")
    for line in lines:
        table.add_row(*line)
    Console(width=max(min_width, shutil.get_terminal_size().columns)).print(table)


def git_commit() -> str | None:
    """The commit the benchmark ran at, with ``-dirty`` when jupyter_mlplat has changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "jupyter_mlplat"],
                               cwd=ROOT, text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """CPU count and model, platform and Python version."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "platform": platform.platform(),
            "python": platform.python_version()}
