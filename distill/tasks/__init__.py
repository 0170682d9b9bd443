"""Tasks: what a plan item becomes. A task is data (`TaskSpec`): its seed fields, its steps (teacher calls),
how the training example is built, its output schema and its checks. One engine runs every task."""

from distill.tasks.engine import Seed, Task, compile_task
from distill.tasks.registry import builtin_names, load_task_file, resolve_task
from distill.tasks.spec import CheckSpec, Step, TaskSpec

__all__ = ["CheckSpec", "Seed", "Step", "Task", "TaskSpec", "builtin_names", "compile_task", "load_task_file",
           "resolve_task"]
