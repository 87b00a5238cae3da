"""`python -m cli.engine_client`: what a `bifrost worker` with a warm engine starts for each
flow run, in place of `python -m prefect.engine` (cli/warm_engine.py).

It hands the run to the engine: its environment (the flow run id, Prefect's control channel,
the worker's settings), its working folder and its stdin/stdout/stderr; the engine forks a
child that runs Prefect's engine on them, and this process waits and exits as the child did
(by the same signal, if one ended it). The worker watches this process as it would the
engine's: SIGTERM or SIGINT (a cancel) reach the child; this process killed or crashed, the
engine kills the child and the run is crashed. With no engine answering, or one that
declines (the run's Prefect settings differ from those it imported Prefect with; it runs
enough already), this process becomes `python -m prefect.engine` (exec: same pid).

It imports only the standard library and cli/forkserver.py: it starts in a few hundredths of
a second.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cli.forkserver import connect, end_as, hand_over

# The worker's environment names its engine's socket here; unset or empty: no engine.
ENGINE_SOCKET_VARIABLE = "BIFROST_WARM_ENGINE"


def main() -> None:
    path = os.environ.get(ENGINE_SOCKET_VARIABLE)
    connection = connect(Path(path)) if path else None
    if connection is not None:
        with connection:
            reply = hand_over(connection, {"env": dict(os.environ), "cwd": os.getcwd()})
        if reply is None:
            print("error: the worker's warm engine stopped during the flow run", file=sys.stderr)
            sys.exit(1)
        if "declined" not in reply:
            sys.exit(end_as(reply))
        print(f"warm engine: {reply['declined']}; starting a fresh engine", file=sys.stderr, flush=True)
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine"])


if __name__ == "__main__":
    main()
