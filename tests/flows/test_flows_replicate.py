"""The `replicate` flow on a real Prefect server: a scheduled studio-wide deployment that
copies new blobs to their tier's replicas, publishes its summary with the lag, and fails
its run (after serving the other replicas) when a replica's endpoint is down."""

from __future__ import annotations

import json

from bifrost_core.config import load_settings
from bifrost_core.replication import service as replication
from flows.registry import ADMIN_ONLY, STUDIO, entry
from tests.support.ingest import OPERATOR, frames, planned, run_planned
from tests.support.runs import invoke, read_run
from tests.support.services import free_port


def artifact(api: str, state, key: str) -> str:
    _, artifacts = read_run(api, state.state_details.flow_run_id)
    return {item.key: item for item in artifacts}[key].data


def test_replicate_is_a_scheduled_studio_flow() -> None:
    replicate = entry("replicate")
    assert (replicate.scope, replicate.action, replicate.concurrency_limit) == (STUDIO, ADMIN_ONLY, 1)
    [schedule] = replicate.schedules
    assert schedule["interval"] <= 300 and schedule["parameters"]["actor"] == "bifrost-service"


def test_replicate_copies_reports_and_fails_on_an_unreachable_replica(
    database, production, settings, flow_env, prefect_server, monkeypatch, tmp_path
) -> None:
    from flows.replicate import replicate

    folder = tmp_path / "dr" / "hot"
    folder.mkdir(parents=True)
    dead = f"http://127.0.0.1:{free_port()}"  # no endpoint listens there
    monkeypatch.setenv(
        "BIFROST_STORAGE_ALLOWED_ROOTS",
        json.dumps([settings.hot_root, settings.archive_root, str(tmp_path / "dr"), "s3://dr-down"]),
    )
    monkeypatch.setenv(
        "BIFROST_STORAGE_OPTIONS",
        json.dumps(
            {
                "s3://dr-down": {
                    "endpoint_url": dead,
                    "key": "k",
                    "secret": "s",
                    "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
                }
            }
        ),
    )
    monkeypatch.setenv("BIFROST_STORAGE_REPLICAS", json.dumps({"hot": [str(folder), "s3://dr-down/hot"]}))
    run_planned(database, settings, [planned(frames(tmp_path / "src", "plate", 1001, 1003))])

    state = replicate(actor=OPERATOR, return_state=True)
    assert state.is_failed()
    assert state.message.startswith("replicate: hot replica s3://dr-down/hot unreachable: ")
    assert "Could not connect to the endpoint URL" in state.message
    text = artifact(prefect_server, state, "replicate-studio")
    assert text.startswith("**Failed: hot replica s3://dr\\-down/hot unreachable")
    assert "| 3 | " in text  # the folder's copies
    # The folder was served all the same: its three copies are verified and recorded.
    current = load_settings()
    lags = {lag.replica: lag for lag in replication.lag(database, replication.configured(database, current))}
    assert (lags[str(folder.resolve())].replicated, lags["s3://dr-down/hot"].blobs) == (3, 3)

    # The CLI: one line, and the exit code of a service that is unavailable.
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    failed = invoke("flow", "run", "replicate", "--json", code=8)
    assert failed.output.startswith("error: replicate: hot replica s3://dr-down/hot unreachable: ")
    assert failed.output.count("\n") == 1

    # Without the unreachable replica the run succeeds, with nothing left to copy.
    monkeypatch.setenv("BIFROST_STORAGE_REPLICAS", json.dumps({"hot": [str(folder)]}))
    done = replicate(actor=OPERATOR, return_state=True)
    assert done.is_completed()
    summary = done.result()
    assert (summary.report.copied, [lag.blobs for lag in summary.report.lag]) == (0, [0])
    text = artifact(prefect_server, done, "replicate-studio")
    assert text.startswith("# Replicate: OK")
    assert "| hot |" in text and "| 0 | 0 | - |" in text


def test_the_verify_flow_checks_the_replicas_and_shows_their_lag(
    database, production, settings, flow_env, prefect_server, monkeypatch, tmp_path
) -> None:
    from flows.maintenance import verify
    from flows.replicate import replicate

    folder = tmp_path / "dr" / "hot"
    folder.mkdir(parents=True)
    monkeypatch.setenv(
        "BIFROST_STORAGE_ALLOWED_ROOTS", json.dumps([settings.hot_root, settings.archive_root, str(folder)])
    )
    monkeypatch.setenv("BIFROST_STORAGE_REPLICAS", json.dumps({"hot": [str(folder)]}))
    run_planned(database, settings, [planned(frames(tmp_path / "src", "plate", 1001, 1003))])
    assert replicate(actor=OPERATOR, return_state=True).is_completed()

    lost = next(path for path in (folder / "blobs").rglob("*") if path.is_file())
    lost.unlink()
    state = verify(actor=OPERATOR, return_state=True)
    assert state.is_failed()
    assert state.message == "verify: 1 of 3 blob location(s) and 3 replica copies damaged"
    text = artifact(prefect_server, state, "verify-studio")
    assert "| replica copies checked | 3 |" in text and "## Replicas" in text
    # The lost copy's record is gone: the lag counts it until the next replicate run.
    assert f"replica {folder.resolve()}: 1 blob(s), 2,048 bytes not yet replicated" in text.replace("\\", "")
    assert lost.name in text
