"""The grading engine: nbgrader preprocessors, the sandbox, grading runs, challenges, the instructor's kit."""

import warnings

# nbgrader's own gradebook code trips SQLAlchemy's autoflush warnings when it records a first submission;
# they say nothing an instructor can act on, once per student, in every grading run.
warnings.filterwarnings("ignore", message=r".* not in session, add operation along", module=r"nbgrader\.api")
