"""Which tier roots a project may name: only roots inside those the deployment allows.

A project's `storage_tiers` point Bifrost at folders or URLs it writes blobs into and that
`storage gc` sweeps, so they are an admin's decision, bounded by the studio's settings
(BIFROST_STORAGE_ALLOWED_ROOTS). Roots are compared in one normal form, whole path
segments at a time: ``/studio/hot`` allows ``/studio/hot/show1`` but not ``/studio/hotter``.
Kept free of fsspec so that the settings can use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping

from bifrost_core.errors import InvalidInput

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


def normalise_root(root: str) -> str:
    """`root` in normal form: a local folder absolute with its symlinks resolved, a URL with
    a lower-case scheme and no trailing slash (``s3://`` alone stands for every bucket).
    ValueError for a relative folder, an empty, ``.`` or ``..`` segment, or a NUL."""
    if not isinstance(root, str) or not root.strip() or "\0" in root:
        raise ValueError(f"{root!r} is not a folder or a URL")
    scheme, sep, rest = root.partition("://")
    if sep and scheme.lower() != "file":
        if not _SCHEME.fullmatch(scheme.lower()):
            raise ValueError(f"{root!r} is not a folder or a URL")
        trimmed = rest.rstrip("/")
        segments = trimmed.split("/") if trimmed else []
        if any(segment in ("", ".", "..") for segment in segments):
            raise ValueError(f"{root!r} has an empty, '.' or '..' path segment")
        return f"{scheme.lower()}://{'/'.join(segments)}"
    path = rest if sep else root
    if not os.path.isabs(path):
        raise ValueError(f"{root!r} is not an absolute path or a URL")
    if ".." in path.split("/"):
        raise ValueError(f"{root!r} has a '..' path segment")
    return os.path.realpath(path)


def is_inside(root: str, allowed: str) -> bool:
    """Whether normalised `root` is `allowed` or under it, by whole path segments."""
    prefix = allowed if allowed.endswith("/") else f"{allowed}/"
    return root == allowed or root.startswith(prefix)


def check_tier_roots(
    tiers: Mapping[str, str], allowed: Collection[str], replicas: Collection[str] = ()
) -> dict[str, str]:
    """`tiers` with each root normalised, or InvalidInput naming the first root that is not
    inside one of the `allowed` (normalised) roots, or that is, holds or lies inside one of
    the `replicas` roots (a tier written to a replica would be copied onto itself)."""
    checked: dict[str, str] = {}
    for name, root in tiers.items():
        try:
            normal = normalise_root(root)
        except ValueError as exc:
            raise InvalidInput(f"storage tier {name}: {exc}", tier=name) from None
        if not any(is_inside(normal, prefix) for prefix in allowed):
            shown = ", ".join(allowed) or "none"
            raise InvalidInput(
                f"storage tier {name}: root {normal!r} is not inside a root this deployment allows "
                f"({shown}; BIFROST_STORAGE_ALLOWED_ROOTS)",
                tier=name,
                allowed=list(allowed),
            )
        replica = next((r for r in replicas if is_inside(normal, r) or is_inside(r, normal)), None)
        if replica is not None:
            raise InvalidInput(
                f"storage tier {name}: root {normal!r} is the same as or nested with the replica {replica!r} "
                "(BIFROST_STORAGE_REPLICAS)",
                tier=name,
            )
        checked[name] = normal
    return checked
