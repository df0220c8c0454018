"""A throwaway PostgreSQL server on loopback for the tests that grade into a PostgreSQL gradebook.

The server is Debian's PostgreSQL (``scripts/setup.sh`` installs the ``postgresql`` package): ``initdb`` and
``pg_ctl`` from ``/usr/lib/postgresql/<version>/bin`` make a cluster in a fresh temporary folder, listening on
127.0.0.1 only, on a free port, with a random password (no other local user can connect) and its unix socket
inside that folder.  PostgreSQL refuses to run as root, so where the tests run as root the cluster belongs to
the unprivileged user ``nobody`` and its commands run as that user (``setpriv``).  It is stopped and its folder
removed when the ``with`` block ends.  Nothing here skips: without PostgreSQL the tests fail and say what to run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

UNPRIVILEGED_USER = "nobody"  # owns the cluster when the tests run as root
SUPERUSER = "grader"  # the cluster's own superuser role


def server_binaries() -> Path:
    """The newest installed PostgreSQL server's bin folder; a failed test that says what to do if there is none."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parent.name.split(".")],
    )
    if not found:
        pytest.fail(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run `bash scripts/setup.sh` "
            "(it installs Debian's `postgresql` package), then run the tests again.",
            pytrace=False,
        )
    return found[-1]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class PostgresServer:
    """A running throwaway server: make databases in it and get their SQLAlchemy URLs."""

    port: int
    password: str
    bindir: Path
    datadir: Path

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its URL for ``c.CourseDirectory.db_url``."""
        import psycopg

        with psycopg.connect(self.url("postgres", driver="postgresql"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_owner(command: list[str], owner: pwd.struct_passwd | None) -> list[str]:
    """``command`` as the cluster's owner: unchanged when that is the current (non-root) user."""
    if owner is None:
        return command
    return [
        "setpriv",
        f"--reuid={owner.pw_uid}",
        f"--regid={owner.pw_gid}",
        "--clear-groups",
        "--",
        *command,
    ]


def _run(command: list[str], owner: pwd.struct_passwd | None, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(_as_owner(command, owner), capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a throwaway PostgreSQL server on 127.0.0.1; stop it and delete its files afterwards."""
    bindir = server_binaries()
    owner = pwd.getpwnam(UNPRIVILEGED_USER) if os.geteuid() == 0 else None
    # Under /tmp itself (not pytest's tmp_path, whose parents only root may enter): the owner must reach it.
    base = Path(tempfile.mkdtemp(prefix="mlphys-postgres-"))
    datadir = base / "data"
    password = secrets.token_urlsafe(24)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    try:
        (base / "pwfile").write_text(password + "\n")
        if owner is not None:
            os.chown(base, owner.pw_uid, owner.pw_gid)
            os.chown(base / "pwfile", owner.pw_uid, owner.pw_gid)
        _run(
            [
                str(bindir / "initdb"),
                f"--pgdata={datadir}",
                f"--username={SUPERUSER}",
                f"--pwfile={base / 'pwfile'}",
                "--auth=scram-sha-256",  # a password even on loopback: other local users cannot connect
                "--encoding=UTF8",
                "--no-sync",  # throwaway: no fsync of the new cluster
            ],
            owner,
            env=env,
            cwd=base,
        )
        port = free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"  # throwaway data: speed over safety
        )
        _run(
            [
                str(bindir / "pg_ctl"),
                "start",
                "--wait",
                "--timeout=60",
                f"--pgdata={datadir}",
                f"--log={base / 'log'}",
                f"--options={options}",
            ],
            owner,
            env=env,
            cwd=base,
        )
        server = PostgresServer(port, password, bindir, datadir)
        _wait_until_it_answers(server, base)
        yield server
    finally:
        if (datadir / "postmaster.pid").exists():
            subprocess.run(
                _as_owner([str(bindir / "pg_ctl"), "stop", "--wait", "--mode=fast", f"--pgdata={datadir}"], owner),
                capture_output=True,
                env=env,
                cwd=base,
                timeout=120,
            )
        shutil.rmtree(base, ignore_errors=True)


def _wait_until_it_answers(server: PostgresServer, base: Path) -> None:
    import psycopg

    deadline = time.monotonic() + 60
    while True:
        try:
            with psycopg.connect(server.url("postgres", driver="postgresql"), connect_timeout=5):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                log = base / "log"
                raise RuntimeError(
                    f"PostgreSQL did not answer:\n{log.read_text()[-3000:] if log.exists() else ''}"
                ) from None
            time.sleep(0.2)
