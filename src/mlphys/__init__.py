"""Machine Learning for Physicists: the course library (`mlphys.course`) and the grader (`mlphys.grading`)."""

__version__ = "0.1.0"
