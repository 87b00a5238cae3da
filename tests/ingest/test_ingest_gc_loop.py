"""`storage gc` and ingest as concurrent processes, either killed -9 at random, round after
round (issue #10): every registered version's blobs stay present and sound, and nothing
outside the tiers is touched. The seed is printed; BIFROST_TEST_SEED replays a run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.ingest import INGEST_CHILD, ROOT, assert_sound, child_env, content, frames, write

ROUNDS = 20
# Where an ingest may be told to kill itself (batches.crash_point); None: a kill -9 from
# the test at a random moment, or none.
CRASH_POINTS = [None, None, None, "stored", "leased", "flushed", "committed:1"]


class Children:
    """`tests.support.ingest_child serve`: forks an ingest or a gc process per request (the imports
    are paid once), and reports how each ended."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [*INGEST_CHILD, "serve"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log.open("w"),
            text=True,
        )

    def _ask(self, *words: str) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\t".join(words) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, self.log.read_text()[-3000:]
        return int(answer)

    def start(self, result: Path, kill_at: str | None, *command: str) -> int:
        return self._ask("start", str(result), kill_at or "-", *command)

    def wait(self, pid: int) -> int:
        code = self._ask("wait", str(pid))
        assert code in (0, -signal.SIGKILL), self.log.read_text()[-3000:]
        return code

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(60)


def deliveries(root: Path) -> list[Path]:
    """Six deliveries of the same shots and asset: one plate they share (what one stored,
    another reuses), and each its own take of the rest (new blobs, then a new version)."""
    out = []
    for number in range(6):
        base = root / f"delivery{number}"
        take = f"take{number}".encode()
        frames(base / "sq010" / "sh010" / "plate", "plate", 1001, 1008)
        frames(base / "sq010" / "sh020" / "comp", "comp", 1001, 1008, salt=take)
        write(base / "assets" / "chair" / "model" / "chair.abc", content(take, 300_000))
        out.append(base)
    return out


@pytest.mark.slow
def test_gc_and_ingest_killed_at_random_keep_every_version_sound(database, production, settings, tmp_path):
    seed = int(os.environ.get("BIFROST_TEST_SEED") or random.randrange(1 << 32))
    print(f"BIFROST_TEST_SEED={seed}")
    rng = random.Random(seed)
    sources = deliveries(tmp_path)
    canary = write(tmp_path / "canary" / "keep.txt", b"outside every tier")
    canary_stat = canary.stat()
    stop = tmp_path / "stop-gc"
    children = Children(child_env(database, settings), tmp_path / "children.log")
    outcomes = []
    try:
        for number in range(ROUNDS):
            stop.unlink(missing_ok=True)
            result = tmp_path / f"ingest-{number}.json"
            crash = rng.choice(CRASH_POINTS)
            gc_result = tmp_path / f"gc-{number}.json"
            gc = children.start(gc_result, None, "gc", str(stop))
            pause = f"{rng.uniform(0, 0.3):.3f}"
            ingest = children.start(
                result, crash, "ingest", str(rng.choice(sources)), str(rng.choice([6, 1000])), pause
            )
            victim = rng.choice([None, ingest, gc]) if crash is None else None
            victim_name = {None: "-", ingest: "kill ingest", gc: "kill gc"}[victim]
            if victim is not None:
                deadline = time.monotonic() + rng.uniform(0.05, 1.0)
                while time.monotonic() < deadline and not result.exists():
                    time.sleep(0.005)
                os.kill(victim, signal.SIGKILL)  # harmless if it has just ended: not reaped yet
            ingest_code = children.wait(ingest)
            stop.touch()
            gc_code = children.wait(gc)
            done = json.loads(result.read_text()) if result.exists() else {}
            assert done.get("problems", []) == [], f"round {number}, seed {seed}"
            removed = json.loads(gc_result.read_text())["removed"] if gc_result.exists() else "?"
            outcomes.append((crash or victim_name, ingest_code, gc_code, removed, done.get("repaired", "-")))
            assert_sound(database, settings)
            assert canary.read_bytes() == b"outside every tier"
            assert canary.stat().st_mtime_ns == canary_stat.st_mtime_ns
        # (crash point or kill, ingest exit, gc exit, blobs gc removed, blobs ingest repaired)
        print(outcomes)

        # Nothing killed: every delivery completes, then one gc run leaves it all sound.
        for number, source in enumerate(sources):
            result = tmp_path / f"final-{number}.json"
            assert children.wait(children.start(result, None, "ingest", str(source), "1000")) == 0
            assert json.loads(result.read_text())["problems"] == []
        assert children.wait(children.start(tmp_path / "final-gc.json", None, "gc", str(stop))) == 0
        assert_sound(database, settings)
    finally:
        children.close()
