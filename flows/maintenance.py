"""Studio-wide upkeep flows, scheduled (flows/registry.py): a nightly `verify` of stored
blobs and a weekly `storage-gc` dry run; what `bifrost verify` and `bifrost storage gc` do,
as deployments the Prefect UI shows, with a markdown summary per run.

They work across every project, so they take no project and only an admin may run them
(their schedules act as the service user, an admin). A verify that finds damage fails its
run, so the damage shows as a failed run in the UI (and can drive a notification).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from prefect import flow
from prefect.states import Failed, State
from pydantic import Field

from bifrost_core.errors import DamagedContent
from bifrost_core.ingest.upkeep import SHOWN_SKIPPED, GcReport, VerifyReport
from bifrost_core.text import escape, escape_markdown
from flows.parameters import Actor, Tier
from flows.reporting import publish_artifacts
from flows.runs import begin_studio
from tasks.maintenance import collect_garbage, verify_blobs

# The artifacts' "project": these runs belong to the whole studio.
STUDIO = "studio"
SHOWN_FINDINGS = 50


@dataclass
class VerifySummary:
    """A verify run's `Report`."""

    report: VerifyReport
    sample: int | None
    tier: str | None
    project: str = STUDIO

    def markdown(self) -> str:
        checked = "every" if self.sample is None else f"a sample of {self.sample}"
        where = "every tier" if self.tier is None else f"tier {escape_markdown(self.tier)}"
        findings = self.report.findings
        lines = [
            f"# Verify: {'OK' if self.report.ok else f'{len(findings)} damaged'}",
            "",
            f"Rehashed {checked} blob location in {where}: {self.report.checked} checked.",
            "",
            "| | count |",
            "| --- | ---: |",
            f"| locations checked | {self.report.checked} |",
            f"| missing | {sum(f.problem == 'missing' for f in findings)} |",
            f"| corrupt | {sum(f.problem != 'missing' for f in findings)} |",
        ]
        if self.report.replication:
            lines.insert(-3, f"| replica copies checked | {self.report.copies_checked} |")
            lines += ["", "## Replicas", ""]
            lines += [f"- {escape_markdown(problem)}" for problem in self.report.unreachable]
            lines += [
                f"- {escape_markdown(lag.tier)} replica {escape_markdown(lag.replica)}: {lag.blobs} blob(s), "
                f"{lag.bytes:,} bytes not yet replicated"
                + ("" if lag.oldest_seconds is None else f", the oldest {lag.oldest_seconds:,.0f} s old")
                for lag in self.report.replication
            ]
        if findings:
            lines += ["", "## Damaged", ""]
            lines += [
                f"- {escape_markdown(f.tier)} {escape_markdown(f.url)}: {escape_markdown(f.problem)}"
                for f in findings[:SHOWN_FINDINGS]
            ]
            if len(findings) > SHOWN_FINDINGS:
                lines.append(f"- … and {len(findings) - SHOWN_FINDINGS} more")
        return "\n".join(lines)

    def tables(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        rows = [
            {
                "hash": f.hash,
                "tier": escape(f.tier),
                "replica": escape(f.replica or ""),
                "url": escape(f.url),
                "problem": f.problem,
            }
            for f in self.report.findings
        ]
        return [("damaged", "blob locations found missing or corrupt", rows)]


@dataclass
class GcSummary:
    """A storage-gc run's `Report`."""

    report: GcReport
    grace_hours: float
    project: str = STUDIO

    def markdown(self) -> str:
        report = self.report
        verb = "would remove" if report.dry_run else "removed"
        lines = [
            f"# Storage gc{' (dry run: nothing removed)' if report.dry_run else ''}",
            "",
            f"Blobs unused for more than {self.grace_hours:g} hours, in {len(report.roots)} tier root(s).",
            "",
            "| | count |",
            "| --- | ---: |",
            f"| blob records {verb} | {report.records_removed} |",
            f"| blobs {verb} | {report.blobs_removed} |",
            f"| bytes {verb} | {report.bytes_removed:,} |",
            f"| temporary files removed | {'not counted' if report.dry_run else report.temp_removed} |",
            f"| items skipped | {report.skipped} |",
        ]
        if report.skipped_examples:
            lines += ["", "## Skipped", ""]
            lines += [f"- {escape_markdown(what)}" for what in report.skipped_examples[:SHOWN_SKIPPED]]
            if report.skipped > len(report.skipped_examples):
                lines.append(f"- … and {report.skipped - len(report.skipped_examples)} more")
        return "\n".join(lines)

    def tables(self) -> list[tuple[str, str, list[dict[str, Any]]]]:
        return [("roots", "tier roots walked", [{"root": escape(root)} for root in self.report.roots])]


@flow(name="verify", flow_run_name="verify")
def verify(
    actor: Actor,
    sample: Annotated[int, Field(ge=1, le=10_000_000)] | None = None,
    tier: Tier | None = None,
) -> VerifySummary | State:
    """Rehash stored blobs and report missing or corrupt ones; the run fails if any is.

    Args:
        actor: Bifrost username the run acts as: an admin (schedules: the service user)
        sample: Rehash only this many random blob locations (empty: all)
        tier: Only blobs in this tier (empty: every tier)
    """
    begin_studio("verify", actor)
    summary = VerifySummary(verify_blobs(sample, tier), sample=sample, tier=tier)
    if not summary.report.ok:
        damage = f"{len(summary.report.findings)} of {summary.report.checked} blob location(s) damaged"
        if summary.report.replication:
            damage = (
                f"{len(summary.report.findings)} of {summary.report.checked} blob location(s) and "
                f"{summary.report.copies_checked} replica copies damaged"
            )
        damage = "; ".join([damage, *summary.report.unreachable])
        publish_artifacts("verify", summary, failure=damage)
        return Failed(message=f"verify: {damage}", data=DamagedContent(f"verify: {damage}"))
    publish_artifacts("verify", summary)
    return summary


@flow(name="storage-gc", flow_run_name="storage-gc")
def storage_gc(
    actor: Actor,
    grace_hours: Annotated[float, Field(ge=0, le=24 * 365)] = 24.0,
    dry_run: bool = True,
) -> GcSummary:
    """Remove blobs no version uses and unrecorded copies left by crashed ingests, once
    older than the grace period; a dry run (the default) only reports what it would remove.

    Args:
        actor: Bifrost username the run acts as: an admin (schedules: the service user)
        grace_hours: Keep anything younger than this many hours
        dry_run: Only report what would be removed
    """
    begin_studio("storage-gc", actor)
    summary = GcSummary(collect_garbage(grace_hours, dry_run), grace_hours=grace_hours)
    publish_artifacts("storage-gc", summary)
    return summary
