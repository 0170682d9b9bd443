"""The one place a teacher is assembled, for generation, `distill eval --judge` and curation's judges.

The backend's teacher (registry.py), then, for an HTTP API: provider batch jobs (`--batch`, the
provider's adapter from `http/<provider>/batch.py` in `wrappers/batch.py`) or a sender process (high
concurrency, `wrappers/sender.py`), the shared response cache (`wrappers/cache.py`), and the run store
for state kept in run.db. Every layer is a `Teacher`, so callers use the declared members and never probe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.teachers.base import Teacher
from distill.teachers.http.base import ApiTeacher
from distill.teachers.registry import TeacherOptions, backend, make_teacher
from distill.teachers.wrappers.batch import BatchSettings, BatchTeacher
from distill.teachers.wrappers.cache import CachedTeacher
from distill.teachers.wrappers.sender import maybe_in_own_process


def build_teacher(spec: str, options: TeacherOptions | None = None, *, cache_dir: Path | None = None,
                  store: Any = None, online: bool = False) -> Teacher:
    """The teacher a spec names, with everything its options ask for around it.

    `cache_dir`: answers go to (and come from) `cache_dir/responses.sqlite` (API teachers only).
    `store`: the run store, attached (batch jobs are recorded there). `online`: never a batch job
    (a judge's verdicts are wanted now, one request each).
    """
    options = options or TeacherOptions()
    teacher = make_teacher(spec, options)
    if isinstance(teacher, ApiTeacher):
        if options.batch and not online:
            teacher = BatchTeacher(teacher.batches(), BatchSettings.from_options(options, teacher.provider))
        else:
            teacher = maybe_in_own_process(teacher, teacher.settings, spec, options)
    if cache_dir is not None and backend(spec).api:
        teacher = CachedTeacher(teacher, Path(cache_dir) / "responses.sqlite")
    if store is not None:
        teacher.attach_store(store)
    return teacher
