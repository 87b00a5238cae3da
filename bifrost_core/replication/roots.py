"""Which replicas a tier has, from the settings (BIFROST_STORAGE_REPLICAS), and the checks
that keep a replica from being a copy in name only.

A replica follows its tier: every blob recorded in tier T, whichever root it was written
to (the studio's or a project's own), is copied to each of T's replicas, where it lives at
the same content key (``blobs/ab/<hash>``), so blobs of several roots share one replica.
Kept free of fsspec so that the settings can use it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from bifrost_core.storage.roots import is_inside, normalise_root

_TIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
SETTING = "BIFROST_STORAGE_REPLICAS"


@dataclass(frozen=True, order=True)
class Replica:
    """One replica root of one tier; `root` is in normal form."""

    tier: str
    root: str

    @property
    def label(self) -> str:
        """How the replica is named in messages, on a store and in metrics' labels."""
        return f"{self.tier} replica {self.root}"


def parse_replicas(value: Mapping[str, object]) -> dict[str, list[str]]:
    """The setting's value (tier -> list of roots) with every root normalised, or ValueError
    naming the first tier or root that is wrong."""
    parsed: dict[str, list[str]] = {}
    for tier, roots in value.items():
        if not isinstance(tier, str) or not _TIER.fullmatch(tier):
            raise ValueError(f"{tier!r} is not a tier name")
        if isinstance(roots, str):
            roots = [roots]
        if not isinstance(roots, list) or not roots:
            raise ValueError(f'tier {tier}: give a list of replica roots such as ["s3://dr-bucket/{tier}"]')
        normal = []
        for root in roots:
            try:
                normal.append(normalise_root(root))
            except ValueError as exc:
                raise ValueError(f"tier {tier}: replica {exc}") from None
        if len(set(normal)) != len(normal):
            raise ValueError(f"tier {tier}: a replica root is listed twice")
        parsed[tier] = normal
    return parsed


def overlaps(a: str, b: str) -> bool:
    """Whether two normalised roots are the same or one is inside the other."""
    return is_inside(a, b) or is_inside(b, a)


def check_replica_roots(
    replicas: Mapping[str, list[str]], primaries: Mapping[str, Collection[str]], allowed: Collection[str]
) -> None:
    """ValueError naming the first replica that is not inside an `allowed` root or is (or
    holds, or lies inside) a primary root of any tier in `primaries` (tier -> its normalised
    roots): a copy on the same store protects nothing, and gc of that tier would take it
    for its own."""
    for tier, roots in replicas.items():
        for root in roots:
            for other, primary_roots in primaries.items():
                clash = next((primary for primary in primary_roots if overlaps(root, primary)), None)
                if clash is not None:
                    raise ValueError(
                        f"{SETTING}: replica {root!r} of tier {tier} is the same as or nested with "
                        f"the root of tier {other} ({clash}): a replica must be another store"
                    )
            if not any(is_inside(root, prefix) for prefix in allowed):
                raise ValueError(
                    f"{SETTING}: replica {root!r} of tier {tier} is not inside a root this deployment "
                    f"allows ({', '.join(allowed) or 'none'}; BIFROST_STORAGE_ALLOWED_ROOTS)"
                )


def check_tiers_known(replicas: Mapping[str, list[str]], tiers: Collection[str]) -> None:
    """ValueError naming the first tier with replicas that is not among `tiers` (the studio's
    and every project's): its replicas would never receive anything."""
    for tier in replicas:
        if tier not in tiers:
            raise ValueError(f"{SETTING}: no storage tier named {tier!r} (tiers: {', '.join(sorted(tiers))})")
