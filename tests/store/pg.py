"""A throw-away PostgreSQL cluster for tests: initdb into a temporary folder, started on
127.0.0.1 on a free port, one fresh database per test, stopped and removed at the end.

As root, ``initdb`` and ``postgres`` refuse to run: they then run as the ``postgres`` user
(``runuser``). The store connects as ``mlplat``, an ordinary (non-superuser) role with a
password over TCP, the way a team's server would be set up.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

#: Set to ``require`` (the Makefile does when PostgreSQL is installed) to fail, not skip,
#: when the cluster cannot be started.
REQUIRE_ENV = "MLPLAT_TEST_PG"

ROLE = "mlplat"


def find_bindir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``: PATH first, then the newest
    Debian ``/usr/lib/postgresql/<major>/bin``."""
    candidates: list[Path] = []
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(os.path.realpath(found)).parent)

    def major(path: str) -> int:
        m = re.search(r"/postgresql/(\d+)/", path)
        return int(m.group(1)) if m else 0

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major,
                                           reverse=True)]
    for bindir in candidates:
        if all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return bindir
    return None


def required_bindir() -> Path:
    """:func:`find_bindir`, with the driver checked too; when either is missing the calling
    test is skipped, or fails under ``MLPLAT_TEST_PG=require`` (what ``make test`` sets where
    PostgreSQL is installed, so CI never skips them quietly)."""
    import pytest

    def unavailable(why: str) -> None:
        if os.environ.get(REQUIRE_ENV) == "require":
            pytest.fail(f"{why} ({REQUIRE_ENV}=require)", pytrace=False)
        pytest.skip(why)

    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed: pip install 'psycopg[binary]'")
    bindir = find_bindir()
    if bindir is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                    "apt-get install postgresql")
    assert bindir is not None
    return bindir


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresCluster:
    """One running cluster; :meth:`create_database` hands out fresh, empty databases."""

    bindir: Path
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mlplat-pg-")))
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    _databases: int = 0
    _running: bool = False
    _watchdog: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *argv]
        return argv

    def _run(self, argv: list[str], timeout: float = 60) -> None:
        proc = subprocess.run(self._as_server_user(argv), capture_output=True, text=True,
                              timeout=timeout, cwd=self.root)
        if proc.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n"
                               f"{proc.stderr}\n{tail}")

    def start(self) -> PostgresCluster:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(pwfile, "postgres")
        self._run([str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                   "--pwfile", str(pwfile), "--auth-local=trust", "--auth-host=scram-sha-256",
                   "-E", "UTF8", "--no-locale", "--no-sync"])
        for attempt in range(3):  # the free port may be taken between finding and binding it
            try:
                self._start_server()
                break
            except RuntimeError as exc:
                if attempt == 2 or "already in use" not in str(exc):
                    raise
                self.port = free_port()
        self._running = True
        self._watch()
        self.admin(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{self.password}'")
        return self

    def _start_server(self) -> None:
        # A test server: durability off (it is thrown away), loopback only, its own socket
        # folder, and the server's zone not UTC so that a store that forgot to ask for UTC shows.
        options = " ".join([
            "-c listen_addresses=127.0.0.1", f"-p {self.port}",
            f"-c unix_socket_directories={self.root}",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
            "-c max_connections=300", "-c TimeZone=Asia/Kolkata",
        ])
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l",
                   str(self.root / "server.log"), "-o", options, "-w", "-t", "60", "start"])

    def _watch(self) -> None:
        """A watchdog that stops the server and removes its folder should this process die
        without its fixtures' teardown (killed): no server outlives the tests."""
        stop = " ".join(self._as_server_user([str(self.bindir / "pg_ctl"), "-D", '"$2"', "-m",
                                              "immediate", "-w", "stop"]))
        script = (f'while kill -0 "$1" 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; '
                  'rm -rf "$3"')
        self._watchdog = subprocess.Popen(
            ["/bin/sh", "-c", script, "mlplat-pg-watchdog", str(os.getpid()),
             str(self.datadir), str(self.root)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)

    def url(self, database: str, user: str = ROLE) -> str:
        return (f"postgresql+psycopg://{user}:{self.password}@127.0.0.1:{self.port}/{database}")

    def admin(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the superuser, each in its own transaction (autocommit)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                             password=self.password, dbname=database, autocommit=True,
                             connect_timeout=10) as conn:
            for statement in statements:
                conn.execute(statement)

    def create_database(self) -> str:
        """A fresh, empty database owned by the store's role; returns its name."""
        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        self.admin(f"CREATE DATABASE {name} OWNER {ROLE} TEMPLATE template0")
        return name

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        if self._running:
            self._running = False
            with contextlib.suppress(Exception):
                self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m",
                           "immediate", "-w", "stop"])
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait(10)
            self._watchdog = None
        shutil.rmtree(self.root, ignore_errors=True)
