"""07_exam: the course's exam, every question type, with numbers drawn per student.

Numeric, multiple-choice, true/false and code-reading answers are judged in the grader against the student's
own variant (:mod:`.kit`, :mod:`.sheet`); a short function is judged by hidden tests; two written answers are
graded by hand with the rubric of the instructor's notebook.  The variant is recomputed from the course secret
and the student id (:mod:`.variant`) and written into the notebook before it runs.
"""

from mlphys.assignments import Assignment
from mlphys.assignments.exam import cases
from mlphys.assignments.exam.kit import EXAM, HIDDEN_NAMES, exam_variant
from mlphys.assignments.exam.neighbours import similarity_flags

ASSIGNMENT = Assignment(
    id=EXAM,
    notebook="exam",
    title="Exam: machine learning for physicists",
    cases=cases.cases,
    hidden_names=HIDDEN_NAMES,
    variant=exam_variant,
    similarity_flags=similarity_flags,
    # Code and prose are compared; numeric answers look alike for everyone and are checked against the variants.
    similarity_cells=("rk4_function", "derivation_answer", "baseline_answer"),
)
