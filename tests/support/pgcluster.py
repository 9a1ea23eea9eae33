"""A private PostgreSQL cluster in a temporary folder, for the tests and the benchmarks.

Started with initdb and pg_ctl from Debian's postgresql package (or any on PATH), as an unprivileged user
when run as root (PostgreSQL refuses to run as root), on a free port of 127.0.0.1, trusting local
connections; stopped and deleted by stop().
"""

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile

import psycopg

from tests.support.services import free_port


class Unavailable(RuntimeError):
    """No PostgreSQL server programs on this machine."""


def server_programs() -> str | None:
    """The folder holding initdb and pg_ctl: on PATH, else the newest of Debian's /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    folders = [os.path.dirname(on_path)] if on_path else []
    folders += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda f: int(f.split("/")[-2]), reverse=True)
    return next((f for f in folders if os.access(os.path.join(f, "pg_ctl"), os.X_OK)), None)


class Cluster:
    """`url(name)` reaches database `name`; `create_database()` makes a fresh one and returns its URL.
    durable=False turns fsync off: for tests, which never crash the server itself."""

    def __init__(self, durable: bool = False):
        programs = server_programs()
        if programs is None:
            raise Unavailable(
                "no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql-15)"
            )
        self._programs, self._names = programs, itertools.count()
        self.folder = tempfile.mkdtemp(prefix="facerec-pg-")
        self._user = {}
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            account = pwd.getpwnam("postgres" if _exists("postgres") else "nobody")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        self.port = free_port()
        data = os.path.join(self.folder, "data")
        try:
            self._run(
                "initdb", "-D", data, "-U", "facerec", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"
            )
            options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=300"
            if not durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            self._run("pg_ctl", "-D", data, "-l", os.path.join(self.folder, "log"), "-o", options, "-w", "start")
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://facerec@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        name = f"facerec{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self):
        try:
            self._run("pg_ctl", "-D", os.path.join(self.folder, "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, program, *args):
        result = subprocess.run(
            [os.path.join(self._programs, program), *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            **self._user,
        )
        if result.returncode != 0:
            raise Unavailable(f"{program} failed: {result.stderr.strip() or result.stdout.strip()}")


def _exists(user):
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False
