"""A small renderer for the farm tests: PNG frames with their number drawn in.

    python fake_renderer.py --output /out/shot.#### --frames 1001-1004 [--sleep 0.2]
        [--fail always|once:<marker file>] [--hang] [--record <file>]

`--output` is the frame path pattern (`#` padding, `.png` added); `--frames` a fileseq frame
set. `--fail always` exits 3 after writing nothing; `--fail once:<marker>` fails when the
marker file does not exist yet (and creates it), so the retry succeeds. `--hang` sleeps
forever after its first frame (for cancel and timeouts). `--record` appends one JSON line
per run (pid, start and end time, CUDA_VISIBLE_DEVICES, host) for the tests to check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    started = time.time()  # what it imports below is the command's own run time, as a renderer's is
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", required=True)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--fail", default="")
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--record", default="")
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)

    import fileseq
    from PIL import Image, ImageDraw

    record = {
        "pid": os.getpid(),
        "tag": args.tag,
        "frames": args.frames,
        "host": os.environ.get("BIFROST_WORKER_HOST", ""),
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        "start": started,
    }
    if args.record:
        _append(args.record, {**record, "event": "start"})
    print(f"fake renderer: frames {args.frames} on {record['host']} gpus {record['gpus']}", flush=True)
    if args.fail == "always":
        print("fake renderer: failing as asked", flush=True)
        return 3
    if args.fail.startswith("once:"):
        marker = Path(args.fail.removeprefix("once:"))
        if not marker.exists():
            marker.write_text("failed once\n")
            print("fake renderer: failing this first time", flush=True)
            return 4
    padding = args.output.count("#")
    stem = args.output.replace("#" * padding, "{frame:0" + str(padding) + "d}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    for frame in fileseq.FrameSet(args.frames):
        image = Image.new("RGB", (64, 36), (20, 20, 20))
        ImageDraw.Draw(image).text((4, 12), str(frame), fill=(255, 255, 255))
        image.save(stem.format(frame=frame) + ".png")
        print(f"fake renderer: frame {frame}", flush=True)
        if args.hang:
            while True:
                time.sleep(1)
        time.sleep(args.sleep)
    if args.record:
        _append(args.record, {**record, "event": "end", "end": time.time()})
    return 0


def _append(path: str, line: dict) -> None:
    with open(path, "a") as out:
        out.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    sys.exit(main())
