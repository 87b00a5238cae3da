"""A worker's warm engine: its flow runs start in a process that has imported Prefect already.

Prefect's process worker starts a new interpreter for each flow run (`python -m
prefect.engine`): seconds of imports before the run does anything, which a render chunk of a
few seconds pays again and again. `bifrost worker` (Linux) starts beside itself `python -m
cli.warm_engine SOCKET`, which imports Prefect's engine, Bifrost and every registered flow
once, then serves on SOCKET (cli/forkserver.py: 0600, same uid only, one thread, a child
forked per run, at most MAX_CHILDREN). The worker's runs start `python -m cli.engine_client`
instead of the engine (`WarmJobConfiguration`): that client hands its run over and waits. A
forked child takes the run's environment, folder and stdin/stdout/stderr and runs Prefect's
engine entry point (`prefect.engine` as `__main__`): the deployment's pull step, the flow,
Prefect's control channel and heartbeat, exactly as the fresh interpreter would.

The engine serves only runs whose Prefect settings (PREFECT_* variables; Prefect reads them
at import and sets logging up from them) are the ones it imported Prefect with; others, and
runs past MAX_CHILDREN, get a fresh engine from their client. It dies with its worker
(PR_SET_PDEATHSIG), its children with it.
"""

from __future__ import annotations

import contextlib
import os
import runpy
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect.utilities.processutils import command_to_string, get_sys_executable
from prefect.workers.process import ProcessJobConfiguration

from cli.engine_client import ENGINE_SOCKET_VARIABLE
from cli.forkserver import ForkServer, Stop, die_with_parent, ping, stop_on_signal
from cli.runner import WARM_MODULES, become, exit_status_of, prefect_files_in, warm_up
from deployments.flows import CHECKOUT_VARIABLE, PULL_STEPS
from flows.registry import FLOWS, ROOT

# What a flow run imports beyond a flow command (measured in the forked children): the
# engine's entry point and pull steps, the PostgreSQL driver (the dialect imports it only on
# first connect), what a render chunk uses to dispatch and to hold its GPU slots.
ENGINE_MODULES = (
    *WARM_MODULES,
    "prefect.engine",
    "prefect.deployments.steps.core",
    "prefect.deployments.flow_runs",
    "prefect.concurrency.sync",
    "prefect._internal.metrics",
    "psycopg",
    "encodings.idna",
    "rich._emoji_codes",
)
READY_SECONDS = 180  # imports on a loaded 2-core machine take tens of seconds at worst
# Prefect's: the engine loads the flow at this entrypoint instead of from the run's deployment.
ENTRYPOINT_VARIABLE = "PREFECT__FLOW_ENTRYPOINT"
FLOWS_BY_ENTRYPOINT = {flow_entry.entrypoint for flow_entry in FLOWS.values()}


def prefect_view(env: Mapping[str, str]) -> dict[str, str]:
    """The Prefect settings a process with this environment reads at import (PREFECT__*
    variables are the run's own: its id, control channel, deployment; read when used)."""
    return {
        key: value
        for key, value in env.items()
        if key.startswith("PREFECT_") and not key.startswith("PREFECT__")
    }


def expected_view() -> dict[str, str]:
    """What a run's environment holds of Prefect's settings when its worker is this process's
    parent: the worker's variables, then its settings as Prefect passes them on to a run."""
    from prefect.settings import get_current_settings

    return prefect_view({**os.environ, **get_current_settings().to_environment_variables(exclude_unset=True)})


class WarmEngine(ForkServer):
    # A client gone (the worker's hard kill, a crash) takes its run down at once, as the
    # kill of a fresh engine would.
    orphan_signal = signal.SIGKILL

    def __init__(self, socket_path: Path) -> None:
        super().__init__(socket_path)
        self.expected: dict[str, str] = {}

    def main(self) -> None:
        signal.signal(signal.SIGTERM, stop_on_signal)
        signal.signal(signal.SIGINT, stop_on_signal)
        try:
            self.log(f"warm engine: {warm_up(ENGINE_MODULES)}")
            self.expected = expected_view()
            self.listen()
            self.log(f"warm engine: ready on {self.socket_path}")
            self.serve()
        except Stop:
            self.log("warm engine: stopping")
        finally:
            self.stop_children()

    def declines(self, request: dict[str, Any]) -> str | None:
        differ = set(prefect_view(request["env"]).items()) ^ set(self.expected.items())
        if differ:
            return f"Prefect settings differ ({', '.join(sorted({key for key, _ in differ}))})"
        if request["env"].get("HOME") != os.environ.get("HOME"):
            return "another HOME (Prefect's defaults are under it)"
        return prefect_files_in(request["cwd"])

    def label(self, request: dict[str, Any]) -> str:
        return f"flow run {request['env'].get('PREFECT__FLOW_RUN_ID', '?')}"

    def run_child(self, request: dict[str, Any]) -> int:
        return run_engine(request)


def module_entrypoint(entrypoint: str) -> str:
    """`flows/render.py:render_chunk` as the module the registry imports it as
    (`flows.render:render_chunk`)."""
    path, _, attribute = entrypoint.partition(":")
    return f"{path.removesuffix('.py').replace('/', '.')}:{attribute}"


def run_engine(request: dict[str, Any]) -> int:
    """In the forked child: become `python -m prefect.engine` in the run's environment and
    folder; its exit status."""
    # Prefect's settings are the engine's (`declines` checked what they are read from): reading
    # them again would cost a chunk's start a tenth of a second.
    become(request["env"], request["cwd"], reread_prefect=False)

    from flows.process import prepare_run_process

    entrypoint = os.environ.get(ENTRYPOINT_VARIABLE)
    if entrypoint in FLOWS_BY_ENTRYPOINT:
        # Imported at warm-up under its module name: Prefect takes it from sys.modules
        # instead of running its file afresh.
        os.environ[ENTRYPOINT_VARIABLE] = module_entrypoint(entrypoint)

    # The flows were imported before this run's environment was: its tracing and JSON logs now.
    prepare_run_process("bifrost-flows")
    sys.path[0] = request["cwd"]  # as `python -m` puts it
    sys.argv = [sys.argv[0]]  # (run_module puts the engine's file first): the run id is in the environment
    # Imported already, on purpose: runpy warns that the module is run afresh as __main__.
    warnings.filterwarnings("ignore", "'prefect.engine' found in sys.modules", RuntimeWarning)
    return exit_status_of(lambda: runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True))


# --------------------------------------------------------------------------- the worker's side


class WarmJobConfiguration(ProcessJobConfiguration):
    """A process worker's job configuration whose runs start through the warm engine when
    it runs (the worker's `job_configuration`; a subclass of the worker itself would replace
    Prefect's registered `process` worker type)."""

    def prepare_for_flow_run(
        self, flow_run, deployment=None, flow=None, work_pool=None, worker_name=None, worker_id=None
    ):  # type: ignore[no-untyped-def]
        super().prepare_for_flow_run(flow_run, deployment, flow, work_pool, worker_name, worker_id=worker_id)
        # A command the pool or deployment chose stays theirs; otherwise the run goes to the engine.
        if not self._command_configured and self.env.get(ENGINE_SOCKET_VARIABLE):
            self.command = command_to_string([get_sys_executable(), "-m", "cli.engine_client"])
            self._command_configured = True
            checkout = self.env.get(CHECKOUT_VARIABLE)
            if (
                deployment is not None
                and deployment.pull_steps == PULL_STEPS
                and deployment.entrypoint in FLOWS_BY_ENTRYPOINT
                and checkout
                and Path(checkout).resolve() == ROOT
            ):
                # What the deployment's one pull step would do (move into the worker's clone,
                # whose flows the engine imported), done here; the run then loads its flow by
                # entrypoint (Prefect's runner's way) and skips reading its deployment,
                # running the step and its event: about a second of a short chunk's start.
                self.working_dir = Path(checkout)
                self.env[ENTRYPOINT_VARIABLE] = deployment.entrypoint


@contextlib.contextmanager
def engine_beside(folder: Path, say: Any) -> Any:
    """The warm engine, started and answering, for the worker's lifetime (its socket named in
    this process's environment, which the runs inherit); nothing where it cannot run (not
    Linux) or did not start: the runs then start a fresh engine each."""
    if sys.platform != "linux":
        yield None
        return
    socket_path = folder / "engine.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.warm_engine", str(socket_path)],
        # An empty folder, as each run's: Prefect reads settings files from where it is imported.
        cwd=folder,
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: die_with_parent(signal.SIGTERM),
    )
    try:
        deadline = time.monotonic() + READY_SECONDS
        while ping(socket_path) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                say(f"warm engine: did not start (exit {process.poll()}); each run starts a fresh engine")
                yield None
                return
            time.sleep(0.2)
        os.environ[ENGINE_SOCKET_VARIABLE] = str(socket_path)
        try:
            yield process
        finally:
            del os.environ[ENGINE_SOCKET_VARIABLE]
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main() -> None:
    WarmEngine(Path(sys.argv[1])).main()


if __name__ == "__main__":
    main()
