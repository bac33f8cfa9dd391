"""Real database servers on 127.0.0.1 for the template's tests (no Docker, no systemd).

PostgreSQL, MariaDB and Redis run from their Debian packages in throw-away data directories, on
ports picked at run time, and are stopped at the end even when tests fail. `ensure_installed`
installs missing packages with apt-get when running as root, and otherwise stops with the
command to run: a variant is never skipped silently.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

APT_PACKAGES = {
    "postgresql": ["postgresql"],
    "mysql": ["mariadb-server-core", "mariadb-client-core"],
    "redis": ["redis-server", "redis-tools"],
}
REDIS_DATABASES = 256  # `create_database` hands out one per caller


class ServerUnavailableError(RuntimeError):
    """A database server needed by the tests is missing and cannot be installed here."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"database server exited with {process.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"database server did not listen on port {port} within {timeout}s")


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def mariadb_bin() -> Path | None:
    binary = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
    return Path(binary).parent if binary else None


def redis_bin() -> Path | None:
    binary = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
    return Path(binary).parent if binary else None


def server_bin(engine: str) -> Path | None:
    return {"postgresql": postgres_bin, "mysql": mariadb_bin, "redis": redis_bin}[engine]()


def ensure_installed(engine: str) -> None:
    if server_bin(engine) is not None:
        return
    packages = APT_PACKAGES[engine]
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ServerUnavailableError(
            f"{engine} server not installed; install it with: sudo {' '.join(command)}"
        )
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
    subprocess.run(command, check=True, capture_output=True)
    if server_bin(engine) is None:
        raise ServerUnavailableError(f"{engine} still missing after: {' '.join(command)}")


def _postgres_user() -> dict[str, str]:
    """initdb and postgres refuse to run as root: drop to the postgres user when root."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


@dataclass
class DatabaseServer:
    """One running server; `create_database` hands out a fresh database per caller (on
    Redis, one of its numbered databases)."""

    engine: str
    port: int = 0
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dbserver-")))
    process: subprocess.Popen[bytes] | None = None
    command: list[str] = field(default_factory=list)
    popen_options: dict[str, str] = field(default_factory=dict)
    handed_out: int = 0

    def start(self) -> DatabaseServer:
        ensure_installed(self.engine)
        self.port = free_port()
        {
            "postgresql": self._start_postgres,
            "mysql": self._start_mariadb,
            "redis": self._start_redis,
        }[self.engine]()
        return self

    def _start_redis(self) -> None:
        binaries = redis_bin()
        assert binaries is not None
        self.command = [
            str(binaries / "redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--databases",
            str(REDIS_DATABASES),
            "--dir",
            str(self.workdir),
        ]
        self.resume()

    def _start_postgres(self) -> None:
        binaries = postgres_bin()
        assert binaries is not None
        data = self.workdir / "data"
        data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
            shutil.chown(data, "postgres")
        self.popen_options = _postgres_user()
        initdb = [str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        subprocess.run(
            [*initdb, "--no-sync", "-E", "UTF8"],
            check=True,
            capture_output=True,
            cwd=self.workdir,
            **self.popen_options,  # type: ignore[call-overload]
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.workdir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "300",
        }
        self.command = [str(binaries / "postgres"), "-D", str(data), "-p", str(self.port)]
        for name, value in settings.items():
            self.command += ["-c", f"{name}={value}"]
        self.resume()

    def _start_mariadb(self) -> None:
        binaries = mariadb_bin()
        assert binaries is not None
        data = self.workdir / "data"
        install = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
        subprocess.run(
            [
                install,
                "--no-defaults",
                "--user=root",
                f"--datadir={data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
        )
        self.command = [
            str(binaries / "mariadbd"),
            "--no-defaults",
            "--user=root",
            f"--datadir={data}",
            "--bind-address=127.0.0.1",
            f"--port={self.port}",
            f"--socket={self.workdir / 'mariadb.sock'}",
            "--skip-name-resolve",
            "--innodb-flush-log-at-trx-commit=0",
            "--max-connections=300",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_unicode_ci",
        ]
        self.resume()

    def resume(self) -> None:
        """(Re)start the server process on the same port and data directory."""
        self.process = subprocess.Popen(
            self.command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.workdir,
            **self.popen_options,  # type: ignore[call-overload]
        )
        wait_for_port(self.port, self.process)

    def pause(self) -> None:
        """Stop the server process, keeping its data: clients see the database go down."""
        if self.process is not None and self.process.poll() is None:
            # PostgreSQL's SIGTERM waits for clients to disconnect; SIGINT is its fast shutdown.
            self.process.send_signal(
                signal.SIGINT if self.engine == "postgresql" else signal.SIGTERM
            )
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def client_command(self, database: str | None = None) -> list[str]:
        """The server's own SQL client, as the admin user, unaligned output, stops on errors."""
        if self.engine == "redis":
            command = [str(shutil.which("redis-cli") or "/usr/bin/redis-cli"), "-p", str(self.port)]
            return [*command, "-n", database] if database else command
        if self.engine == "postgresql":
            binaries = postgres_bin()
            assert binaries is not None
            command = [str(binaries / "psql"), "-h", "127.0.0.1", "-p", str(self.port)]
            command += ["-U", "postgres", "-v", "ON_ERROR_STOP=1", "-At"]
            return [*command, "-d", database] if database else command
        client = shutil.which("mariadb") or "/usr/bin/mariadb"
        command = [client, "--no-defaults", "-h", "127.0.0.1", "-P", str(self.port), "-u", "root"]
        command += ["--batch", "--skip-column-names", "--unbuffered"]
        return [*command, database] if database else command

    def query(self, database: str, sql: str) -> str:
        """Run one statement in `database` and return its output."""
        flag = "-c" if self.engine == "postgresql" else "-e"
        result = subprocess.run(
            [*self.client_command(database), flag, sql],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{self.engine}: {sql!r} failed: {result.stderr}")
        return result.stdout.strip()

    @contextmanager
    def locked_table(self, database: str, table: str) -> Iterator[None]:
        """Hold an exclusive lock on `table` from another session: the app's queries wait."""
        lock = (
            f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;"
            if self.engine == "postgresql"
            else f"LOCK TABLES {table} WRITE;"
        )
        session = subprocess.Popen(
            self.client_command(database),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert session.stdin is not None
        assert session.stdout is not None
        try:
            session.stdin.write(f"{lock}\nSELECT 'locked';\n")
            session.stdin.flush()
            line = session.stdout.readline()
            while line and line.strip() != "locked":  # psql echoes BEGIN and LOCK TABLE
                line = session.stdout.readline()
            assert line.strip() == "locked", f"{self.engine}: could not lock {table}"
            yield
        finally:
            release = "COMMIT;" if self.engine == "postgresql" else "UNLOCK TABLES;"
            session.communicate(f"{release}\n", timeout=30)

    def _admin_sql(self, sql: str) -> None:
        flag = "-c" if self.engine == "postgresql" else "-e"
        command = [*self.client_command(), flag, sql]
        for attempt in range(50):
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode == 0:
                return
            if attempt == 49:
                raise RuntimeError(f"{self.engine}: {sql!r} failed: {result.stderr}")
            time.sleep(0.1)

    def create_database(self, label: str) -> str:
        """A fresh database with its own user; returns its async SQLAlchemy URL (on Redis:
        the URL of a numbered database no other caller got)."""
        if self.engine == "redis":
            assert self.handed_out < REDIS_DATABASES, "every Redis database is handed out"
            self.handed_out += 1
            return f"redis://127.0.0.1:{self.port}/{self.handed_out - 1}"
        name = f"t_{label[:20]}_{uuid.uuid4().hex[:8]}".replace("-", "_").lower()
        password = uuid.uuid4().hex
        if self.engine == "postgresql":
            self._admin_sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
            self._admin_sql(f"CREATE DATABASE {name} OWNER {name}")
            return f"postgresql+asyncpg://{name}:{password}@127.0.0.1:{self.port}/{name}"
        self._admin_sql(
            f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci; "
            f"CREATE USER '{name}'@'127.0.0.1' IDENTIFIED BY '{password}'; "
            f"GRANT ALL PRIVILEGES ON {name}.* TO '{name}'@'127.0.0.1';"
        )
        return f"mysql+asyncmy://{name}:{password}@127.0.0.1:{self.port}/{name}?charset=utf8mb4"

    def stop(self) -> None:
        self.pause()
        shutil.rmtree(self.workdir, ignore_errors=True)


def main(engines: list[str]) -> int:
    """`python -m tests.servers postgresql mysql`: install missing servers, or explain how."""
    for engine in engines:
        try:
            ensure_installed(engine)
        except ServerUnavailableError as error:
            print(f"error: {error}", flush=True)
            return 1
        except subprocess.CalledProcessError as error:
            print(f"error: installing the {engine} server failed: {error}", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:] or list(APT_PACKAGES)))
