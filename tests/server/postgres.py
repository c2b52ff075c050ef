"""A real, throw-away PostgreSQL server for the server tests.

``PostgresServer`` makes a fresh cluster (``initdb``) in its own temporary directory,
starts it on a free TCP port of 127.0.0.1 with its unix socket in that directory, hands
out empty databases (``create_database``) and, on ``stop``, kills it and removes the
directory. Nothing is shared between two servers, so each pytest-xdist worker can start
its own at the same time.

* PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` system
  user (``runuser``), otherwise as the current user. The cluster directory comes from
  ``tempfile.mkdtemp`` (not pytest's ``tmp_path``, which only root may enter) and is
  handed to that user.
* Durability is off by default (``fsync``, ``synchronous_commit``, ``full_page_writes``):
  the tests never survive a power cut, only a killed process, and this makes databases
  and commits cheap. ``PostgresServer(durable=True)`` keeps PostgreSQL's defaults, for
  the crash tests that need a commit to be on disk when it returns.
* ``require_postgres()`` is the policy when PostgreSQL cannot run here: the test is
  skipped, or fails where ``SEGANY_REQUIRE_POSTGRES=1`` (CI) says it must run.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import pytest

PG_ROOT = Path("/usr/lib/postgresql")  # Debian: /usr/lib/postgresql/<version>/bin
SERVER_USER = "postgres"  # the system user the server runs as when we are root
REQUIRE_ENV = "SEGANY_REQUIRE_POSTGRES"
START_TIMEOUT_S = 60
PORT_TRIES = 5  # a free port can be taken by someone else before the server binds it

# Off unless `durable`. A killed server loses nothing the OS already has, so fsync and
# full_page_writes only matter for a crash of the machine; synchronous_commit=off, though,
# can lose a killed server's last reported commits.
FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


def _version_key(directory: Path) -> tuple[int, ...]:
    """(15,) for /usr/lib/postgresql/15/bin, (9, 6) for .../9.6/bin; () if not a version."""
    name = directory.parent.name
    if not re.fullmatch(r"\d+(\.\d+)*", name):
        return ()
    return tuple(int(part) for part in name.split("."))


def _has_server_tools(directory: Path) -> bool:
    return all(os.access(directory / tool, os.X_OK) for tool in ("initdb", "pg_ctl"))


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: the newest Debian
    /usr/lib/postgresql/*/bin, else the one on PATH, else None."""
    versioned = [d for d in PG_ROOT.glob("*/bin") if _has_server_tools(d)]
    if versioned:
        return max(versioned, key=_version_key)
    initdb = shutil.which("initdb")
    if initdb is None:
        return None
    # pg_ctl finds `postgres` next to its real file, so prefer where the link points
    for candidate in (Path(initdb).resolve().parent, Path(initdb).parent):
        if _has_server_tools(candidate):
            return candidate
    return None


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs a program as the server's user, and that user
    (None: the current user)."""
    if os.geteuid() != 0:
        return [], None
    return ["runuser", "-u", SERVER_USER, "--"], pwd.getpwnam(SERVER_USER)


@functools.cache
def postgres_available() -> str | None:
    """None if a server can be started here, else why not."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        return (
            "PostgreSQL server binaries (initdb, pg_ctl) not found in "
            f"{PG_ROOT}/*/bin or on PATH (Debian: apt-get install postgresql)"
        )
    if not os.access(bin_dir / "postgres", os.X_OK):
        return f"{bin_dir} has initdb and pg_ctl but no postgres server binary"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return (
                "running as root, which PostgreSQL refuses, and there is no "
                f"{SERVER_USER!r} user to run it as"
            )
        if shutil.which("runuser") is None:
            return "running as root, which PostgreSQL refuses, and runuser is missing"
    return None


def require_postgres() -> None:
    """Skip the calling test (fixture) when PostgreSQL cannot run here, or fail it when
    SEGANY_REQUIRE_POSTGRES=1 says it must run (CI)."""
    reason = postgres_available()
    if reason is None:
        return
    required = os.environ.get(REQUIRE_ENV, "")
    if required not in ("", "0"):
        pytest.fail(f"{reason}, and {REQUIRE_ENV}={required} requires it", pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])


class PostgresServer:
    """One throw-away PostgreSQL cluster; ``with PostgresServer() as server: ...``."""

    def __init__(self, durable: bool = False, bin_dir: Path | None = None) -> None:
        self.durable = durable
        self.bin_dir = bin_dir
        self.port: int | None = None
        self.root: Path | None = None  # the temporary directory; all below is in it
        self.startup_s: float | None = None  # initdb + start, for the curious

    # ---- paths -------------------------------------------------------------------------

    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("PostgresServer is not started")
        return self.root

    @property
    def data_dir(self) -> Path:
        return self._root() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._root() / "socket"

    @property
    def log_path(self) -> Path:
        return self._root() / "server.log"

    # ---- life --------------------------------------------------------------------------

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.bin_dir is not None
        prefix, _ = _run_as()
        # PG* variables of the caller (PGDATA, PGPORT, PGOPTIONS...) must not steer our server
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        return subprocess.run(
            [*prefix, str(self.bin_dir / tool), *args],
            cwd=self._root(),  # the server's user may not be able to enter ours
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S + 30,
        )

    def _server_options(self) -> str:
        settings = ["listen_addresses=127.0.0.1"]
        if not self.durable:
            settings += FAST_SETTINGS
        options = [f"-p {self.port}", f"-k {shlex.quote(str(self.socket_dir))}"]
        return " ".join(options + [f"-c {s}" for s in settings])

    def start(self) -> PostgresServer:
        if self.root is not None:
            raise RuntimeError("PostgresServer already started")
        if self.bin_dir is None:
            reason = postgres_available()
            if reason is not None:
                raise RuntimeError(reason)
            self.bin_dir = find_pg_bin()
        began = time.perf_counter()
        self.root = Path(tempfile.mkdtemp(prefix="segany-pg-"))
        atexit.register(self.stop)  # in case the session never reaches its teardown
        try:
            self.socket_dir.mkdir()
            self.log_path.touch()
            _, user = _run_as()
            if user is not None:
                for path in (self.root, self.socket_dir, self.log_path):
                    os.chown(path, user.pw_uid, user.pw_gid)
            self._initdb()
            self._start_on_free_port()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - began
        return self

    def _initdb(self) -> None:
        done = self._run(
            "initdb",
            *("-D", str(self.data_dir), "-A", "trust", "-U", "postgres"),
            *("--no-sync", "-E", "UTF8", "--locale=C"),
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"initdb failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
            )

    def _start_on_free_port(self) -> None:
        for _ in range(PORT_TRIES):
            self.port = _free_port()
            logged = self.log_path.stat().st_size
            done = self._run(
                "pg_ctl",
                *("-D", str(self.data_dir), "-l", str(self.log_path)),
                *("-w", "-t", str(START_TIMEOUT_S), "-o", self._server_options(), "start"),
            )
            if done.returncode == 0:
                return
            with self.log_path.open("rb") as log_file:
                log_file.seek(logged)
                log = log_file.read().decode(errors="replace")
            # someone took the port between our choice and the server's bind: another one
            if "could not bind" not in log and "could not create any TCP/IP" not in log:
                break
        raise RuntimeError(
            f"PostgreSQL did not start (pg_ctl exit {done.returncode}): "
            f"{done.stdout.strip()} {done.stderr.strip()}\n"
            f"--- tail of {self.log_path} ---\n{_tail(self.log_path)}"
        )

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        """Kill the server (``pg_ctl stop -m immediate``) and remove its directory; safe to
        call twice, and after a failed start."""
        root = self.root
        if root is None:
            return
        atexit.unregister(self.stop)
        try:
            if (self.data_dir / "postmaster.pid").exists():
                stopped = self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "stop")
                pid = self._postmaster_pid()
                if stopped.returncode != 0 and pid is not None:
                    with contextlib.suppress(OSError):  # a server pg_ctl could not stop
                        os.kill(pid, signal.SIGKILL)
        finally:
            self.root = None
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- databases ---------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        """The SQLAlchemy URL of a database of this server (psycopg 3 driver)."""
        self._root()
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def _admin(self, statement: str, name: str) -> None:
        import psycopg
        from psycopg import sql

        self._root()
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL(statement).format(sql.Identifier(name)))

    def create_database(self, name: str) -> str:
        """Create an empty database ``name`` and return its URL."""
        self._admin("CREATE DATABASE {}", name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, closing its open connections first."""
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)
