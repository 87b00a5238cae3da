"""The `replicate` flow: every blob of a tier copied to the tier's replicas
(BIFROST_STORAGE_REPLICAS), each copy read back and its BLAKE3 checked before it is
recorded (bifrost_core/replication). Scheduled every few minutes (flows/registry.py), so
the content's RPO is the schedule plus a run; `bifrost flow run replicate` starts one now.

A replica that cannot be written (its endpoint down, its bucket gone) or a blob that could
not be copied fails the run, after the other replicas were served, so the problem shows
in the Prefect UI; the next scheduled run copies what is still missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import flow
from prefect.states import Failed, State

from bifrost_core.errors import StorageError
from bifrost_core.replication.service import ReplicationReport
from bifrost_core.text import escape, escape_markdown
from flows.maintenance import STUDIO
from flows.parameters import Actor, Tier
from flows.reporting import publish_artifacts
from flows.runs import begin_studio
from tasks.replicate import replicate_blobs


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:,.0f} s"


@dataclass
class ReplicateSummary:
    """A replicate run's `Report`."""

    report: ReplicationReport
    tier: str | None
    project: str = STUDIO

    def markdown(self) -> str:
        report = self.report
        where = "every tier" if self.tier is None else f"tier {escape_markdown(self.tier)}"
        lines = [
            f"# Replicate: {'OK' if report.ok else f'{len(report.problems)} problem(s)'}",
            "",
            f"Replicas of {where}: {len(report.outcomes)}; copied and verified "
            f"{report.copied} blob(s), {report.bytes:,} bytes.",
            "",
            "| tier | replica | copied | bytes | failed | behind | bytes behind | oldest behind |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        lags = {(lag.tier, lag.replica): lag for lag in report.lag}
        for outcome in report.outcomes:
            lag = lags.get((outcome.tier, outcome.replica))
            behind = "-" if lag is None else f"{lag.blobs} | {lag.bytes:,} | {_age(lag.oldest_seconds)}"
            lines.append(
                f"| {escape_markdown(outcome.tier)} | {escape_markdown(outcome.replica)} | {outcome.copied} "
                f"| {outcome.bytes:,} | {outcome.failed} | {behind} |"
            )
        problems = [*report.problems, *(f for o in report.outcomes for f in o.failures)]
        if problems:
            lines += ["", "## Problems", ""]
            lines += [f"- {escape_markdown(problem)}" for problem in problems]
        return "\n".join(lines)

    def tables(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        rows = [
            {
                "tier": escape(lag.tier),
                "replica": escape(lag.replica),
                "blobs_behind": lag.blobs,
                "bytes_behind": lag.bytes,
                "oldest_behind_seconds": lag.oldest_seconds,
                "replicated": lag.replicated,
            }
            for lag in self.report.lag
        ]
        return [("lag", "replication lag per replica after the run", rows)]


@flow(name="replicate", flow_run_name="replicate")
def replicate(actor: Actor, tier: Tier | None = None) -> ReplicateSummary | State:
    """Copy every blob not yet on each replica of its tier there, verified by its BLAKE3;
    the run fails if a replica was unreachable or a blob could not be copied.

    Args:
        actor: Bifrost username the run acts as: an admin (schedules: the service user)
        tier: Only the replicas of this tier (empty: every tier's)
    """
    checked = begin_studio("replicate", actor)
    summary = ReplicateSummary(replicate_blobs(checked, tier), tier=tier)
    if not summary.report.ok:
        problem = "; ".join(summary.report.problems)
        publish_artifacts("replicate", summary, failure=problem)
        return Failed(message=f"replicate: {problem}", data=StorageError(f"replicate: {problem}"))
    publish_artifacts("replicate", summary)
    return summary
