"""pgBackRest against a test's own PostgreSQL cluster and S3 bucket, configured from the files
infra/postgres ships (so the tests exercise them), with the test's paths and endpoint.

pgBackRest speaks to S3 over TLS only, and moto's server with its own ad-hoc certificate ends
connections without a TLS close, which pgBackRest's OpenSSL refuses; so the bucket is served
by moto behind HAProxy (Debian's, as `bifrost gateway` uses), which terminates TLS with a
self-signed certificate (verification off for it, as a test's endpoint)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.pg_cluster import Cluster, owned_folder
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, running_s3
from tests.support.services import free_port, service_missing

INFRA = Path(__file__).resolve().parents[2] / "infra" / "postgres"
STANZA = "bifrost"
SERVER_USER = "postgres"


def pgbackrest() -> str:
    found = shutil.which("pgbackrest")
    if found is None:
        service_missing("pgBackRest (make tools: Debian's pgbackrest)", "not on PATH")
    return found


@dataclass(frozen=True)
class S3Repository:
    """pgBackRest's repo1-* options for a bucket served over TLS on loopback."""

    options: dict[str, str]
    bucket: str
    endpoint_url: str  # moto's own (plain HTTP), for looking into the bucket


@contextmanager
def tls_s3_repository(bucket: str = "db-backups") -> Iterator[S3Repository]:
    """A moto bucket behind HAProxy's TLS, as pgBackRest's repository."""
    haproxy = shutil.which("haproxy")
    openssl = shutil.which("openssl")
    if haproxy is None or openssl is None:
        service_missing("HAProxy and openssl (make tools)", "not on PATH")
    with running_s3(bucket) as s3, tempfile.TemporaryDirectory(prefix="bifrost-s3tls-") as folder:
        root = Path(folder)
        made = subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
             "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem")],
            capture_output=True, text=True,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        (root / "tls.pem").write_text((root / "cert.pem").read_text() + (root / "key.pem").read_text())
        port = free_port()
        backend = s3.endpoint_url.removeprefix("http://")
        (root / "haproxy.cfg").write_text(
            "global\n  maxconn 200\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 120s\n"
            f"  timeout server 120s\nfrontend s3\n  bind 127.0.0.1:{port} ssl crt {root / 'tls.pem'}\n"
            f"  default_backend moto\nbackend moto\n  server moto {backend}\n"
        )
        proxy = subprocess.Popen([haproxy, "-f", str(root / "haproxy.cfg")], stderr=subprocess.PIPE)
        try:
            _wait_port(port, proxy)
            yield S3Repository(
                options={
                    "repo1-type": "s3",
                    "repo1-path": "/bifrost",
                    "repo1-s3-bucket": bucket,
                    "repo1-s3-endpoint": "127.0.0.1",
                    "repo1-storage-port": str(port),
                    "repo1-s3-region": REGION,
                    "repo1-s3-key": ACCESS_KEY,
                    "repo1-s3-key-secret": SECRET_KEY,
                    "repo1-s3-uri-style": "path",
                    "repo1-storage-verify-tls": "n",
                },
                bucket=bucket,
                endpoint_url=s3.endpoint_url,
            )
        finally:
            proxy.terminate()
            proxy.wait(10)


def _wait_port(port: int, process: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"haproxy ended: {process.stderr.read().decode() if process.stderr else ''}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("haproxy did not listen")


def write_config(path: Path, cluster: Cluster, repository: dict[str, str]) -> Path:
    """infra/postgres/pgbackrest.conf with this cluster's pg1-* and `repository`'s repo1-*
    options (the shipped repo1-* options that only an S3 repository takes are dropped for a
    folder), its logs and locks beside `path`."""
    config = configparser.ConfigParser(interpolation=None)
    config.optionxform = str  # type: ignore[assignment,method-assign]  # pgBackRest's names are case-sensitive
    config.read(INFRA / "pgbackrest.conf")
    shipped = config["global"]
    for name in [name for name in shipped if name.startswith("repo1-") and "retention" not in name]:
        del shipped[name]
    shipped.update(repository)
    shipped.update({"log-path": str(path.parent), "lock-path": str(path.parent), "log-level-console": "warn"})
    config[STANZA].update(
        {"pg1-path": str(cluster.data), "pg1-port": str(cluster.port), "pg1-socket-path": str(cluster.root)}
    )
    with path.open("w") as out:
        config.write(out, space_around_delimiters=False)
    if os.geteuid() == 0:
        shutil.chown(path, SERVER_USER, SERVER_USER)
    path.chmod(0o600)  # it holds the repository's credentials
    return path


def archiving_settings(config: Path, archive_timeout: int) -> dict[str, str]:
    """infra/postgres/archiving.conf's settings, with this test's pgBackRest configuration in
    the archive_command and its own archive_timeout."""
    settings = {}
    for line in (INFRA / "archiving.conf").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, value = line.partition("=")
            settings[name.strip()] = value.strip().strip("'")
    settings["archive_command"] = settings["archive_command"].replace(
        "pgbackrest ", f"{pgbackrest()} --config={config} ", 1
    )
    settings["archive_timeout"] = str(archive_timeout)
    return settings


@contextmanager
def archiving_cluster(repository: dict[str, str], *, archive_timeout: int) -> Iterator[tuple[Cluster, Path]]:
    """A new cluster (initdb on a free port) archiving its WAL with pgBackRest into
    `repository`, and the pgBackRest configuration file; both removed at the end."""
    cluster = Cluster(owned_folder(), free_port())
    try:
        cluster.run("initdb", "-D", str(cluster.data), "-U", "postgres", "-A", "trust", "--no-sync")
        config = write_config(cluster.root / "pgbackrest.conf", cluster, repository)
        cluster.configure(
            port=str(cluster.port),
            listen_addresses="127.0.0.1",
            unix_socket_directories=str(cluster.root),
            **archiving_settings(config, archive_timeout),
        )
        cluster.start()
        yield cluster, config
    finally:
        if cluster.running():
            cluster.stop("immediate")
        shutil.rmtree(cluster.root, ignore_errors=True)
