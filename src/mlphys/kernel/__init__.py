"""Code that runs inside the student's sandboxed kernel: the bridge that answers grader calls, and the
plain-data wire format.

This package and the course library (`mlphys.course`) are all of `mlphys` a sandbox mounts; students
may read it. Nothing here may hold a secret, a hidden test or a reference value.
"""
