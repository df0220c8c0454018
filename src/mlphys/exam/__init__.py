"""Exams on the grader's side: each student's own variant delivered, and a time window per student that holds.

- :mod:`mlphys.exam.window`: the schedule, ``exams.toml`` in the course root, read and checked, and each
  student's window (start, end, end plus grace) computed from it.
- :mod:`mlphys.exam.schedule`: ``mlphys exam schedule ASSIGNMENT`` writes the schedule into nbgrader's gradebook
  (the due date and every student's extension) so that nbgrader's own lateness and the formgrader agree.
- :mod:`mlphys.exam.exchange`: an nbgrader collect plugin that dates each submission by the time the exchange
  received it (inode change times, which the student's process cannot set), not by the student's own
  ``timestamp.txt``, and keeps a receipt log for the instructor.
- :mod:`mlphys.exam.delivery` and :mod:`mlphys.exam.release`: ``mlphys exam release`` puts each student's own
  variant (an exam's per-student numbers) into the exchange beside the release; nbgrader's fetch, extended by
  :class:`~mlphys.exam.delivery.FetchWithVariant`, hands each student their own.
- :mod:`mlphys.exam.late`: late means zero (or a configured fraction lost) past the student's deadline plus
  grace, and a note at the top of the autograded notebook that says why, in the feedback.

Nothing here is exam-specific beyond the schedule file: any assignment with a due date gets the receipt time
and the late rule.
"""
