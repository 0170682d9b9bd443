"""Teachers around a teacher, whatever its backend: the response cache, provider batch jobs, a sender process.

Each is a `WrappedTeacher`; `teachers/stack.py` decides which go around a backend's teacher.
"""
