"""`bifrost serve`: the HTTP API under uvicorn (`api.app:factory` in each worker)."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes")] = 1,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs, health at /healthz and /readyz)."""
    import uvicorn

    from api.metrics import MULTIPROCESS_DIR_ENV
    from bifrost_core.telemetry import tracing_enabled
    from cli.common import open_database, settings

    config = settings()
    # Fail here with one line (bad URL, unreachable server, schema behind), not in N workers.
    open_database().dispose()
    tracing_enabled()  # an exporter it does not know is one line too
    # Tells each worker how many siblings it has (see api.app.WORKERS_ENV).
    os.environ["BIFROST_API_WORKERS"] = str(workers)
    metrics_dir = None
    if workers > 1 and not os.environ.get(MULTIPROCESS_DIR_ENV):
        # Every worker's metrics in one place, so that any worker's /metrics answers for all.
        metrics_dir = os.environ[MULTIPROCESS_DIR_ENV] = tempfile.mkdtemp(prefix="bifrost-metrics-")
    try:
        uvicorn.run(
            "api.app:factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,  # the app writes its own JSON access lines, with request ids
            log_level=config.log_level.lower(),
            server_header=False,
            # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: then any local client could
            # pose as any address (and dodge the failed-token limit). Only configured proxies count.
            proxy_headers=bool(config.api_trusted_proxies),
            forwarded_allow_ips=config.api_trusted_proxies,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    typer.run(serve)
