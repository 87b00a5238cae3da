"""A real renderer on the farm: Debian's Blender renders a small scene headless on the CPU.

Mandatory under CI (CI=true or BIFROST_REQUIRE_BLENDER=1): a missing Blender fails the test
there, and only skips it on a laptop.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from bifrost_core.db.uow import UnitOfWork
from bifrost_core.versions.models import Version
from flows.registry import ROOT
from tests.support.farm import BIFROST, Farm

REQUIRED = os.environ.get("CI") == "true" or os.environ.get("BIFROST_REQUIRE_BLENDER") == "1"
# Cycles on the CPU, small and fast; Debian's build has no OpenImageDenoise: denoising off.
SETTINGS = (
    "import bpy; s = bpy.context.scene; s.cycles.samples = 8; s.cycles.use_denoising = False; "
    "s.render.resolution_x = 320; s.render.resolution_y = 180; s.render.resolution_percentage = 100"
)


@pytest.fixture(scope="module")
def blender() -> str:
    found = shutil.which("blender") or ("/usr/bin/blender" if Path("/usr/bin/blender").exists() else None)
    if found is None:
        if REQUIRED:
            pytest.fail("blender is required here (apt-get install -y blender)", pytrace=False)
        pytest.skip("blender is not installed")
    return found


def make_scene(blender: str, path: Path) -> Path:
    """The factory scene (a cube, a light, a camera) saved as a .blend of our own."""
    expression = f"import bpy; bpy.ops.wm.save_as_mainfile(filepath={json.dumps(str(path))})"
    subprocess.run(
        [blender, "-b", "--factory-startup", "-noaudio", "--python-expr", expression],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert path.is_file()
    return path


def test_blender_renders_a_job_whose_frames_are_ingested_and_verified(
    farm: Farm, blender: str, tmp_path: Path
) -> None:
    scene = make_scene(blender, tmp_path / "scene.blend")
    command = [
        blender, "-b", "--factory-startup", "-noaudio", "{scene}", "-E", "CYCLES",
        "--python-expr", SETTINGS,
        "-o", "{output}", "-F", "PNG", "-s", "{first}", "-e", "{last}", "-j", "{step}", "-a",
    ]  # fmt: skip
    job_id = farm.submit(command, scene=str(scene), frames="1-3", chunk_size=2, timeout=300)
    job = farm.wait_job(job_id, {"completed", "failed"}, timeout=300)
    assert job.state == "completed", job.report
    assert [c.state for c in farm.chunks(job_id)] == ["completed", "completed"]
    frames = sorted(Path(job.output_dir).glob("*.png"))
    assert [frame.name for frame in frames] == [f"sh010_lighting.000{n}.png" for n in (1, 2, 3)]
    with Image.open(frames[0]) as image:
        assert image.size == (320, 180)
    with UnitOfWork(farm.database) as uow:
        version = uow.session.scalar(select(Version).where(Version.id == job.version_id))
        assert version.render_job_id == job_id
        assert len(version.representations[0].files) == 3
    verified = subprocess.run(
        [BIFROST, "verify"], env=farm.env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert verified.returncode == 0, verified.stderr
    assert "0 damaged" in verified.stdout
