from __future__ import annotations

from bifrost_core.db.repository import Repository
from bifrost_core.tasks.models import Task, TaskType


class TaskTypeRepository(Repository[TaskType]):
    model = TaskType
    label = "task type"


class TaskRepository(Repository[Task]):
    model = Task
    label = "task"
