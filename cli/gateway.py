"""`bifrost gateway`: HAProxy in front of several API processes, for a small team.

It runs in the foreground until Ctrl-C or SIGTERM:
- N `bifrost serve` processes on free loopback ports, each trusting the gateway's
  X-Forwarded-For (BIFROST_API_TRUSTED_PROXIES=127.0.0.1); one that dies is started again;
- HAProxy (Debian's `haproxy`) on --host:--port with TLS, configured from
  infra/small-team/haproxy.cfg: health checks on /readyz, per-client rate limits, a request
  size limit, security headers, and reads retried on another process when one dies.

The TLS certificate is `$BIFROST_HOME/gateway/gateway.pem` (key and certificate): a self-signed
one is made on first start (openssl); put a real one there to replace it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from cli.errors import EXIT_CONFIG, EXIT_UNAVAILABLE, fail
from cli.output import say

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "small-team" / "haproxy.cfg"
START_TIMEOUT = 60.0


def gateway(
    processes: Annotated[int, typer.Option(min=1, max=32, help="API processes behind the gateway")] = 3,
    host: Annotated[str, typer.Option(help="Interface the gateway listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTPS port")] = 8443,
    rate_limit: Annotated[
        int, typer.Option(min=1, help="Requests a client address may make in 10 s; more get 429")
    ] = 1000,
    max_body: Annotated[
        int | None, typer.Option(min=1024, help="Largest request body [default: BIFROST_API_MAX_BODY_BYTES]")
    ] = None,
) -> None:
    """Serve the API over HTTPS through HAProxy, load-balanced over several processes."""
    from cli.common import open_database, settings
    from deployments.local_server import free_port, port_free

    haproxy = shutil.which("haproxy")
    if haproxy is None:
        raise fail("the gateway needs HAProxy: install Debian's haproxy (make tools)", EXIT_CONFIG)
    config = settings()
    open_database().dispose()  # a bad database setting fails here, once, not in N processes
    if not port_free(port, host):
        raise fail(f"port {port} on {host} is in use by another program: choose --port", EXIT_CONFIG)
    folder = config.home / "gateway"
    folder.mkdir(parents=True, exist_ok=True)
    certificate = _certificate(folder / "gateway.pem", host)
    ports = [free_port() for _ in range(processes)]
    servers = "\n".join(f"    server api{n} 127.0.0.1:{p} check" for n, p in enumerate(ports, 1))
    (folder / "haproxy.cfg").write_text(TEMPLATE.read_text().replace("@SERVERS@", servers))
    environment = {
        **os.environ,
        "BIFROST_GATEWAY_BIND": f"{host}:{port}",
        "BIFROST_GATEWAY_CERT": str(certificate),
        "BIFROST_GATEWAY_RATE": str(rate_limit),
        "BIFROST_GATEWAY_MAX_BODY": str(max_body or config.api_max_body_bytes),
    }
    check = [haproxy, "-c", "-f", str(folder / "haproxy.cfg")]
    checked = subprocess.run(check, env=environment, capture_output=True, text=True)
    if checked.returncode != 0:
        alerts = [line.split(" : ", 2)[-1] for line in checked.stderr.splitlines() if "[ALERT]" in line]
        raise fail(f"HAProxy refused its configuration: {'; '.join(alerts[:2])}", EXIT_CONFIG)

    api_environment = {**os.environ, "BIFROST_API_TRUSTED_PROXIES": "127.0.0.1"}
    apis: dict[int, subprocess.Popen] = {}
    proxy: subprocess.Popen | None = None
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for api_port in ports:
            apis[api_port] = _serve(api_port, api_environment)
        proxy = subprocess.Popen([haproxy, "-db", "-f", str(folder / "haproxy.cfg")], env=environment)
        if not _answers(host, port, certificate, rate_limit):
            raise fail(f"the gateway did not answer on https://{host}:{port} within {START_TIMEOUT:.0f} s",
                       EXIT_UNAVAILABLE)  # fmt: skip
        listed = ", ".join(map(str, ports))
        say(f"gateway: https://{host}:{port} -> {processes} API processes (ports {listed})")
        say(f"gateway: certificate {certificate}; Ctrl-C stops it")
        while not stopping:
            if proxy.poll() is not None:
                raise fail(f"HAProxy exited with code {proxy.returncode}", EXIT_UNAVAILABLE)
            for api_port, process in apis.items():
                if process.poll() is not None and not stopping:
                    code = process.returncode
                    say(
                        f"gateway: the API process on port {api_port} exited ({code}); starting it again",
                        err=True,
                    )
                    apis[api_port] = _serve(api_port, api_environment)
            time.sleep(0.5)
    finally:
        for process in [*apis.values(), *([proxy] if proxy else [])]:
            if process.poll() is None:
                process.terminate()
        for process in [*apis.values(), *([proxy] if proxy else [])]:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _serve(port: int, environment: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.serve", "--host", "127.0.0.1", "--port", str(port)], env=environment
    )


def _certificate(path: Path, host: str) -> Path:
    """The gateway's key and certificate in one PEM file; a self-signed one when there is none."""
    if path.exists():
        return path
    openssl = shutil.which("openssl")
    if openssl is None:
        raise fail(f"no certificate at {path} and no openssl to make one", EXIT_CONFIG)
    extra = f",IP:{host}" if host[0].isdigit() and host != "127.0.0.1" else ""
    names = f"DNS:localhost,IP:127.0.0.1{extra}"
    key, cert = path.with_suffix(".key.tmp"), path.with_suffix(".crt.tmp")
    made = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825",
         "-subj", "/CN=bifrost-gateway", "-addext", f"subjectAltName={names}",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True,
    )  # fmt: skip
    if made.returncode != 0:
        raise fail(f"openssl could not make a certificate: {made.stderr.strip()}", EXIT_CONFIG)
    partial = path.with_suffix(".tmp")
    partial.write_bytes(cert.read_bytes() + key.read_bytes())
    partial.chmod(0o600)
    partial.replace(path)  # whole or not at all
    key.unlink()
    cert.unlink()
    return path


def _answers(host: str, port: int, certificate: Path, rate_limit: int) -> bool:
    """The gateway serves /readyz with a healthy process behind it, over verified TLS.

    The checks count against this address's rate limit (requests per 10 s) like any other
    request: polled faster, a slow start-up would use it up and be answered 429 until the end."""
    import ssl

    import httpx

    trusted = ssl.create_default_context(cafile=str(certificate))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"https://{host}:{port}/readyz", verify=trusted, timeout=2)
            if answer.status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(max(0.3, 20.0 / rate_limit))  # at most half the limit
    return False
