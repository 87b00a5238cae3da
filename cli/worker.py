"""`bifrost worker --pool NAME [--gpus N] [--host NAME] [--limit M]`: a Prefect process worker
for one of Bifrost's pools, run in this process.

On a GPU host (`--gpus N`) it declares the host's GPUs before it takes any work: the global
concurrency limit `gpu:<host>` gets N slots (created, or updated when the host changed), and
the worker polls the work queues `gpus-1` .. `gpus-N` of the pool (a chunk needing k GPUs is
created in `gpus-k`, so only hosts with at least k GPUs take it) with at most 3N runs at once
(N rendering, N dispatched ahead and waiting for GPUs, N ending). A chunk holds k slots of its
host's limit while its command runs (flows/render.py).

Its flow runs inherit this process's environment, plus BIFROST_WORKER_HOST and
BIFROST_WORKER_GPUS (what the chunk reads to find its limit and GPU ids), BIFROST_CHECKOUT
(this Bifrost's repository root, for the deployments' pull step) and a Prefect run heartbeat
every 30 s unless the operator chose one (a run whose heartbeat stops is marked crashed).

Besides its polls, it polls the moment the server announces a run scheduled in its pool (the
`prefect.flow-run.Scheduled` events, over a websocket), so a dispatched chunk does not wait
for the next poll.

SIGTERM (or Ctrl-C) stops it: it polls no more, the processes of its runs end with it, and
the runs it had not finished are marked Crashed (a render job then retries their chunks).

On Linux its runs start from a warm engine beside it (cli/warm_engine.py: one process that has
imported Prefect and the flows, forking a child per run) instead of a fresh interpreter each;
`--cold` keeps Prefect's way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import tempfile
from pathlib import Path
from typing import Any
from uuid import UUID

import typer

from cli.errors import EXIT_CONFIG, EXIT_INVALID
from cli.flows import persistent_server
from cli.output import say
from cli.runner import prefect_answers

GPU_POOL = "bifrost-gpu"
GPU_QUERY_SECONDS = 2  # how often a GPU worker polls for runs, unless PREFECT_WORKER_QUERY_SECONDS says
WAKE_RETRY_SECONDS = 5  # a lost event stream is opened again after this pause
WAKE_RECHECK_SECONDS = 0.3  # a poll on an event that found nothing is repeated once after this


def gpu_limit_name(host: str) -> str:
    return f"gpu:{host}"


def gpu_queues(gpus: int) -> list[str]:
    return [f"gpus-{count}" for count in range(1, gpus + 1)]


def worker(
    pool: str = typer.Option(..., "--pool", help="Work pool to take runs from: bifrost-cpu or bifrost-gpu"),
    gpus: int | None = typer.Option(
        None, "--gpus", min=1, max=64, help="GPUs of this host (required on the GPU pool)"
    ),
    host: str | None = typer.Option(
        None, "--host", help="Host name the GPUs are counted under [default: hostname]"
    ),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Most runs at once [default: the GPU count on a GPU host, else none]"
    ),
    warm: bool = typer.Option(
        True,
        "--warm/--cold",
        help="Start runs from a warm engine beside the worker (Linux), or each in a fresh interpreter",
    ),
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", min=1, max=65535, help="Serve this worker's Prometheus metrics on this port"
    ),
    metrics_address: str = typer.Option(
        "127.0.0.1", "--metrics-address", help="Interface the metrics listen on"
    ),
) -> None:
    """Run a Prefect worker for a Bifrost pool (on a GPU host: declare its GPUs as `gpu:<host>`)."""
    if pool == GPU_POOL and gpus is None:
        say(f"error: the {GPU_POOL} pool needs --gpus N (the GPUs of this host)", err=True)
        raise typer.Exit(EXIT_INVALID)
    host = host or socket.gethostname()
    if not host or any(char in host for char in "/%:") or not host.isprintable():
        say(f"error: --host {host!r}: a host name without '/', '%' or ':'", err=True)
        raise typer.Exit(EXIT_INVALID)
    # A worker's console shows what it runs (other commands keep Prefect quiet).
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO")
    if gpus is not None:
        # A dispatched chunk waits for the next poll: Prefect's default (10 s) would be most of
        # a short chunk's delay. Set before Prefect is imported (it reads settings then).
        os.environ.setdefault("PREFECT_WORKER_QUERY_SECONDS", str(GPU_QUERY_SECONDS))
    persistent_server()
    url = os.environ["PREFECT_API_URL"].rstrip("/")
    if not prefect_answers(url):
        say(f"error: the Prefect server at {url} does not answer", err=True)
        raise typer.Exit(EXIT_CONFIG)
    os.environ["BIFROST_WORKER_HOST"] = host
    os.environ["BIFROST_CHECKOUT"] = str(Path(__file__).resolve().parent.parent)
    if "PREFECT_RUNNER_HEARTBEAT_FREQUENCY" not in os.environ:  # the setting's former name
        from deployments.automations import HEARTBEAT_SECONDS

        # The zombie automation's window is three beats (deployments/automations.py).
        os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    queues: list[str] | None = None
    if gpus is not None:
        os.environ["BIFROST_WORKER_GPUS"] = str(gpus)
        queues = gpu_queues(gpus)
        # Room for the chunks dispatched ahead (flows/render.py DISPATCH_AHEAD): they start
        # while the host is busy and wait for its GPUs; and for runs whose command has ended
        # but which are still ending (dispatching, reporting their state): a chunk dispatched
        # by one of those is taken at once, not when that run's process has gone. The GPU ids
        # and slots still bound what renders.
        limit = limit or 3 * gpus
    if metrics_port is not None:
        from cli.worker_metrics import serve_metrics

        try:
            serve_metrics(metrics_port, metrics_address, pool=pool, host=host, gpus=gpus)
        except OSError as exc:
            say(f"error: --metrics-port {metrics_port}: {exc.strerror}", err=True)
            raise typer.Exit(EXIT_CONFIG) from None
    # Until its event loop runs, SIGTERM ends the worker as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    from cli.warm_engine import engine_beside

    name = f"{pool} {host} {os.getpid()}"
    unfinished: set[UUID] = set()
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bifrost-engine-") as folder,
            engine_beside(Path(folder), say) if warm else contextlib.nullcontext(),
        ):
            asyncio.run(
                _run(pool, host, gpus, queues, limit, name, unfinished, counted=metrics_port is not None)
            )
    except (KeyboardInterrupt, asyncio.CancelledError):
        say(f"worker {host} on {pool}: stopped")
    # Their processes have ended with the worker (and its engine): said now, not when the
    # server misses their heartbeats, and not left Pending for ever.
    crash_unfinished(unfinished, name)


def crash_unfinished(flow_run_ids: set[UUID], worker_name: str) -> None:
    """Mark Crashed the runs this worker started that had not ended when it stopped, so a
    render job retries their chunks and a coordinator sees why."""
    if not flow_run_ids:
        return
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        for flow_run_id in flow_run_ids:
            try:
                flow_run = client.read_flow_run(flow_run_id)
                if flow_run.state is None or not flow_run.state.is_final():
                    client.set_flow_run_state(
                        flow_run_id,
                        Crashed(message=f"Its worker {worker_name!r} stopped before the run ended"),
                    )
                    say(f"flow run {flow_run.name}: crashed (its worker stopped)")
            except Exception as exc:  # the server gone too: its zombie-run automation marks them
                say(f"flow run {flow_run_id}: not marked crashed ({exc})", err=True)


async def _run(
    pool: str,
    host: str,
    gpus: int | None,
    queues: list[str] | None,
    limit: int | None,
    name: str,
    unfinished: set[UUID],
    *,
    counted: bool,
) -> None:
    from prefect.workers.process import ProcessWorker

    from cli.warm_engine import WarmJobConfiguration
    from deployments.flows import POOL_TYPES

    # SIGTERM cancels the worker's task, as asyncio's own handler does on Ctrl-C, so its
    # shutdown runs in order. (Raised by a signal handler, KeyboardInterrupt could land inside
    # any callback of the loop: it then left the worker's tasks or threads unfinished and
    # the process alive, polling no more.)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    if gpus is not None and queues is not None:
        await declare_gpus(pool, POOL_TYPES.get(pool, "process"), host, gpus, queues)
    worker = ProcessWorker(work_pool_name=pool, work_queues=queues, name=name, limit=limit)
    worker.job_configuration = WarmJobConfiguration
    note_unfinished(worker, unfinished)
    if counted:
        from cli.worker_metrics import count_runs

        count_runs(worker)
    say(f"worker {host} on {pool}" + (f": {gpus} GPU(s), queues {', '.join(queues or [])}" if gpus else ""))
    waking = asyncio.create_task(poll_when_scheduled(worker))
    try:
        await worker.start(printer=say)
    finally:
        waking.cancel()


def note_unfinished(worker: Any, unfinished: set[UUID]) -> None:
    """Keep in `unfinished` the runs the worker has taken (set Pending) and not seen end: its
    `run` returns when a run's process has ended."""
    # Prefect's worker has no public hook between taking a run and starting its process, the
    # moments a stop is most likely to fall in (Prefect is pinned to a minor version).
    propose_pending = worker._propose_pending_state
    run = worker.run

    async def taking(flow_run: Any) -> bool:
        unfinished.add(flow_run.id)  # before the answer: a stop may fall while it is on its way
        taken = await propose_pending(flow_run)
        if not taken:
            unfinished.discard(flow_run.id)
        return taken

    async def running(flow_run: Any, configuration: Any, task_status: Any = None) -> Any:
        stopped = False
        try:
            return await run(flow_run=flow_run, configuration=configuration, task_status=task_status)
        except asyncio.CancelledError:
            stopped = True
            raise
        finally:
            if not stopped:
                unfinished.discard(flow_run.id)

    worker._propose_pending_state = taking
    worker.run = running


async def poll_when_scheduled(worker: Any) -> None:
    """Poll the moment a run of the worker's pool is scheduled, not at its next poll: the
    server's `prefect.flow-run.Scheduled` events, streamed over a websocket (as Prefect's
    worker hears of cancellations). Without the stream (it reconnects after a pause) the
    worker's own polling goes on. A poll finds nothing when the event came before the run's
    commit: one more a moment later."""
    import logging

    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter

    logger = logging.getLogger("bifrost.worker")
    while True:
        try:
            pool_id = worker.work_pool.id
            break
        except RuntimeError:  # the pool is known once the worker has synced with the server
            await asyncio.sleep(0.5)
    wanted = asyncio.Event()

    async def listen() -> None:
        scheduled = EventFilter(
            event=EventNameFilter(name=["prefect.flow-run.Scheduled"]),
            any_resource=EventAnyResourceFilter(id=[f"prefect.work-pool.{pool_id}"]),
        )
        while True:
            try:
                async with get_events_subscriber(filter=scheduled) as subscriber:
                    async for _ in subscriber:
                        wanted.set()
            except Exception as exc:  # the server restarting, a dropped connection
                logger.debug("scheduled-run events: %s; listening again shortly", exc)
            await asyncio.sleep(WAKE_RETRY_SECONDS)

    listening = asyncio.create_task(listen())
    try:
        while True:
            await wanted.wait()
            wanted.clear()
            for pause in (0.0, WAKE_RECHECK_SECONDS):
                await asyncio.sleep(pause)
                try:
                    if await worker.get_and_submit_flow_runs():
                        break
                except Exception as exc:  # the worker's own polling reports its errors
                    logger.debug("poll on a scheduled-run event: %s", exc)
                    break
    finally:
        listening.cancel()


async def declare_gpus(pool: str, pool_type: str, host: str, gpus: int, queues: list[str]) -> None:
    """The pool, its queues `gpus-1..N` and the limit `gpu:<host>` with N slots (idempotent)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
        WorkPoolCreate,
    )
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        with contextlib.suppress(ObjectAlreadyExists):
            await client.create_work_pool(WorkPoolCreate(name=pool, type=pool_type))
        for queue in queues:
            with contextlib.suppress(ObjectAlreadyExists):
                await client.create_work_queue(name=queue, work_pool_name=pool)
        name = gpu_limit_name(host)
        try:
            await client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=gpus))
        except ObjectAlreadyExists:
            await client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=gpus, active=True)
            )
