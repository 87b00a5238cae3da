"""GPU hosts for render submission tests: registered as `bifrost worker --gpus N` does, by the
Prefect global concurrency limit `gpu:<host>` on a real server; no worker needs to run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gpu_host(api_url: str, host: str, gpus: int) -> Iterator[None]:
    """`host` registered with `gpus` GPUs on the Prefect server at `api_url` while inside."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    name = f"gpu:{host}"
    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, gpus)
        try:
            yield
        finally:
            client.delete_global_concurrency_limit_by_name(name)
