"""The farm as render submission sees it: the registered GPU hosts, and the nudge a submit gives
the render queue.

A GPU host registers by running `bifrost worker --pool bifrost-gpu --gpus N`, which creates
(or updates) the Prefect global concurrency limit `gpu:<host>` with N slots; a render chunk
holds one slot per GPU it needs. Submitting a job checks its GPUs per chunk against them
(bifrost_core/render/service.py takes the mapping, so it stays free of Prefect).
"""

from __future__ import annotations

from deployments.runs import PrefectUnavailable, prefect_api, prefect_client

GPU_LIMIT_PREFIX = "gpu:"
_PAGE = 200


def gpu_hosts() -> dict[str, int]:
    """Host name -> GPUs, from the active `gpu:<host>` limits of the server PREFECT_API_URL names."""
    hosts: dict[str, int] = {}
    with prefect_api():
        try:
            with prefect_client() as client:
                offset = 0
                while True:
                    limits = client.read_global_concurrency_limits(limit=_PAGE, offset=offset)
                    for limit in limits:
                        if limit.active and limit.name.startswith(GPU_LIMIT_PREFIX):
                            hosts[limit.name.removeprefix(GPU_LIMIT_PREFIX)] = limit.limit
                    if len(limits) < _PAGE:
                        return hosts
                    offset += _PAGE
        except Exception as exc:  # the server is down or refused: not the submitter's fault
            raise PrefectUnavailable(
                f"cannot read the GPU hosts from Prefect: {type(exc).__name__}: {exc}"
            ) from None


def nudge(actor: str, project: str) -> None:
    """Start a `render-queue` pass over the project now, so a job just submitted starts within
    seconds rather than at the queue's next scheduled pass (30 s). Best effort: when Prefect
    refuses, the scheduled pass dispatches the job."""
    from prefect.deployments import run_deployment

    from flows.registry import FLOWS, project_tag

    with prefect_api():
        run_deployment(
            FLOWS["render-queue"].deployment,
            parameters={"actor": actor, "project": project},
            timeout=0,
            tags=["bifrost", "render", project_tag(project)],
        )
