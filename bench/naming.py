"""Naming-rule matching cost per path, on the paths of bench/ingest.py's set A.

    .venv/bin/python bench/naming.py [--repeat 5] [--naming-module PATH]

Set A is 10,000 frames in a shot tree (50 shots x 2 tasks x 100 frames); ingest planning
matches each scanned item's first path, so the cost per path is what a rule costs. Timed:
the default rules (templates), and a regular-expression rule, over every path; then the
issue's pathological rule, ``(x+x+)+y`` against a 36-character name (`--name-length`),
once. `--naming-module` times another copy of bifrost_core/storage/naming.py (e.g. one that
used Python's `re`, where the pathological case doubles per character: use 24 or so).
Nothing here asserts anything.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from types import ModuleType

from bifrost_core.ingest.planning import DEFAULT_NAMING_RULES

REGEX_RULE = {"regex": r"(?P<sequence>sq\d+)/(?P<shot>sh\d+)/(?P<task>[a-z]+)/(?P<name>[^/]+)\.exr"}
PATHOLOGICAL = {"regex": r"(?P<sequence>(x+x+)+y)/(?P<shot>\w+)/(?P<task>\w+)/.*"}


def set_a_paths() -> list[str]:
    return [
        f"sq{s // 10 + 1:03d}/sh{s:04d}/{task}/{task}.{frame}.exr"
        for s in range(50)
        for task in ("plate", "comp")
        for frame in range(1001, 1101)
    ]


def load(path: str | None) -> ModuleType:
    if path is None:
        from bifrost_core.storage import naming

        return naming
    spec = importlib.util.spec_from_file_location("naming_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def per_path(rules, paths: list[str], repeat: int) -> tuple[float, int]:
    """Microseconds per path, best of `repeat` runs (the machine may be busy), and how many
    paths matched."""
    times, matched = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        matched = sum(rules.match(path) is not None for path in paths)
        times.append((time.perf_counter() - start) / len(paths) * 1e6)
    return min(times), matched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--naming-module", default=None)
    parser.add_argument("--name-length", type=int, default=36, help="of the pathological case's name")
    args = parser.parse_args()
    naming = load(args.naming_module)
    paths = set_a_paths()
    for label, rules in (("default rules", DEFAULT_NAMING_RULES), ("regex rule", [REGEX_RULE])):
        compiled = naming.NamingRules(rules)
        micros, matched = per_path(compiled, paths, args.repeat)
        print(f"{label:14} {micros:6.2f} us/path  ({matched} of {len(paths)} matched)")
    name = "x" * args.name_length
    start = time.perf_counter()
    naming.NamingRules([PATHOLOGICAL]).match(f"{name}/sh010/comp/{name}.exr")
    print(f"(x+x+)+y on a {len(name)}-character name: {time.perf_counter() - start:.6f} s")


if __name__ == "__main__":
    main()
