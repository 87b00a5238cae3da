from bifrost_core.projects import service as projects
from bifrost_core.projects.schemas import ProjectCreate, SequenceCreate, ShotCreate
from bifrost_core.scope import SYSTEM
from bifrost_core.tasks import service as tasks
from bifrost_core.tasks.schemas import TaskCreate
from bifrost_core.versions import service as versions
from bifrost_core.versions.schemas import VersionCreate


def test_publish_numbers_versions_per_task_and_variant(uow):
    s = uow.session
    project = projects.create_project(s, actor=SYSTEM, data=ProjectCreate(code="P1", name="P"))
    seq = projects.create_sequence(s, actor=SYSTEM, project_id=project.id, data=SequenceCreate(code="sq010"))
    shot = projects.create_shot(s, actor=SYSTEM, sequence_id=seq.id, data=ShotCreate(code="sh010"))
    task = tasks.create_task(s, actor=SYSTEM, data=TaskCreate(task_type="comp", shot_id=shot.id))
    numbers = [
        versions.create_version(s, actor=SYSTEM, data=VersionCreate(task_id=task.id)).number for _ in range(3)
    ]
    other = versions.create_version(s, actor=SYSTEM, data=VersionCreate(task_id=task.id, variant="alt"))
    uow.commit()
    assert numbers == [1, 2, 3]
    assert other.number == 1
    assert task.status == "wtg"
