"""PostgreSQL clusters of a test's own, from Debian's server binaries: `initdb` a primary on a
free port, a streaming replica of it by `pg_basebackup -R`, started, stopped (or killed) by the
test. A cluster archiving its WAL with pgBackRest: tests/support/pgbackrest.py.

As root (CI here) the servers run as the `postgres` user, which PostgreSQL requires."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.services import free_port, service_missing


def _bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not found:
        service_missing("PostgreSQL's server binaries (initdb)", "not under /usr/lib/postgresql")
    return found[-1].parent


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Cluster:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.data = root / "data"
        self.bin = _bin_dir()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def run(self, program: str, *args: str) -> str:
        done = subprocess.run(
            _as_server_user([str(self.bin / program), *args]), capture_output=True, text=True, cwd=self.root
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def configure(self, **settings: str) -> None:
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            for name, value in settings.items():
                conf.write(f"{name} = '{value}'\n")

    def start(self) -> None:
        log = str(self.root / "server.log")
        self.run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return subprocess.run(_as_server_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "status"]),
                              capture_output=True).returncode == 0  # fmt: skip

    def kill(self) -> None:
        """Kill the server as a crash would: SIGKILL to the postmaster (its backends end with it)."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.05)

    def replica(self, root: Path) -> Cluster:
        """A streaming replica (hot standby) of this running cluster, started."""
        replica = Cluster(root, free_port())
        self.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                 "-D", str(replica.data), "-R", "-X", "stream", "--no-sync")  # fmt: skip
        replica.configure(port=str(replica.port), unix_socket_directories=str(root))
        replica.start()
        return replica


def owned_folder() -> Path:
    """A folder the server user may write (pytest's tmp_path is the test user's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="bifrost-pg-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    return folder


@contextmanager
def primary_with_replica() -> Iterator[tuple[Cluster, Cluster]]:
    """A primary (wal_level replica, fsync off: a test's data) and one streaming replica."""
    primary = Cluster(owned_folder(), free_port())
    replica: Cluster | None = None
    try:
        primary.run("initdb", "-D", str(primary.data), "-U", "postgres", "-A", "trust", "--no-sync")
        primary.configure(
            port=str(primary.port),
            listen_addresses="127.0.0.1",
            unix_socket_directories=str(primary.root),
            fsync="off",
            full_page_writes="off",
        )
        primary.start()
        replica = primary.replica(owned_folder())
        yield primary, replica
    finally:
        for cluster in (replica, primary):
            if cluster is not None:
                if cluster.running():
                    cluster.stop("immediate")
                shutil.rmtree(cluster.root, ignore_errors=True)
