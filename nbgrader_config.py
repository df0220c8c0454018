"""nbgrader configuration for the course.

Plain `nbgrader generate_assignment / autograde / generate_feedback / export` and the formgrader use
this file.  The grading engine plugs in through nbgrader's own extension points:

- submissions are read by a safe exporter (links, pipes, huge or broken files become an empty,
  explained notebook) and a pre-convert hook moves links and special files out of the submission
  before nbgrader copies it;
- sanitising first normalises grade-cell metadata against the gradebook;
- execution runs student code in a bubblewrap sandbox and hidden tests in the grader process;
- only inert output types (text, PNG, JPEG) are kept from the student's kernel;
- scores come from the grader's verdicts, not from the student kernel's outputs;
- what hidden tests keep for later (challenge entries) goes into the gradebook's database, from which
  `mlphys leaderboard` rebuilds the boards;
- feedback never shows hidden tests, and its HTML is sanitised;
- collect dates each submission by when the exchange received it, and a submission past the student's
  deadline plus grace scores zero, with a note in its feedback saying why.
"""

import os

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    CheckCellMetadata,
    ClearHiddenTests,
    ClearOutput,
    DeduplicateIds,
    GetGrades,
    IgnorePattern,
    LimitOutput,
    OverwriteCells,
    OverwriteKernelspec,
)

from mlphys.exam.late import ExplainLatePenalty
from mlphys.grading.pages import CleanStudentContent, EscapeGradebookNames, FitFigures, markdown_to_safe_html
from mlphys.grading.preprocessors import NormalizeGradeCells, SandboxedExecute, SanitizeOutputs, SaveVerdictGrades
from mlphys.grading.records import SaveRecords
from mlphys.grading.rubrics import HideRubrics, ShowRubrics

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.course_id = "ml4physics"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))  # the course directory: where this file is
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
# PostgreSQL for a course that outgrows one machine, or grades on several (`pip install .[postgres]` installs
# the driver). Create an empty database owned by the grader's role; nbgrader creates its tables on first use,
# and the challenge records (table mlphys_record) and `mlphys leaderboard` use the same database. e.g.:
# c.CourseDirectory.db_url = "postgresql+psycopg://grader@db.example.org/ml4physics"
# (a password belongs in ~/.pgpass or PGPASSWORD of the grader's account, not in this file; student kernels
# see neither). grader_tests/test_postgres.py grades a cohort into a throwaway PostgreSQL server this way.

# The exchange through which assignments are released, fetched, submitted and collected, and feedback
# returned.  Out of the box it is the folder `exchange/` of the course directory, for one machine on which
# the students' Jupyter reaches this directory.  With JupyterHub and one Unix user per person, use a folder
# outside the course directory that every user can write (e.g. /srv/nbgrader/exchange), set here and in
# the students' configuration: see docs/instructors/jupyterhub.md.
c.Exchange.root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exchange")
c.Exchange.path_includes_course = True  # students' copies go to <course>/<assignment>; courses can share one
if not os.path.isdir(c.Exchange.root):  # the formgrader offers release and collect only if it exists
    os.makedirs(c.Exchange.root)
    os.chmod(c.Exchange.root, 0o777)  # what `nbgrader release_assignment` would set: students write to it
# An exam's per-student numbers come with the fetched copy (`mlphys exam release` puts them in the exchange):
# nbgrader's fetch, then the student's own variant file. Students' configuration needs this line too.
c.ExchangeFactory.fetch_assignment = "mlphys.exam.delivery.FetchWithVariant"

# Deadlines (docs/instructors/exams.md, "Time window"). nbgrader's submit runs in the student's own process: the
# time in a submission's folder name and timestamp.txt is whatever that process wrote. Collect instead dates each
# submission by when the exchange received it (inode change times, which no student's process can set back),
# writes that into the collected timestamp.txt (autograde puts it into the gradebook) and keeps a receipt log in
# receipts/. `mlphys exam schedule` writes an exam's due date and students' extensions from exams.toml.
c.ExchangeFactory.collect = "mlphys.exam.exchange.ReceiptCollect"
# Later than the student's deadline (due date plus extension) plus grace: the score is lost, and a note at the top
# of the feedback says why. Assignments without a due date are never late.
c.AssignLatePenalties.plugin_class = "mlphys.exam.late.WindowLatePenalty"
# c.WindowLatePenalty.penalty = 0.25  # lose a quarter of the score instead of all of it ("zero", the default)
# c.WindowLatePenalty.grace_minutes = 5  # grace for assignments exams.toml does not list (default 0)

c.Autograde.exporter_class = "mlphys.grading.intake.SafeNotebookExporter"
c.Autograde.pre_convert_hook = "mlphys.grading.intake.quarantine_unsafe_files"
c.Autograde.sanitize_preprocessors = [
    NormalizeGradeCells,
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    OverwriteCells,
    CheckCellMetadata,
]
c.OverwriteCells.add_missing_cells = True
c.Autograde.autograde_preprocessors = [
    SandboxedExecute,
    SanitizeOutputs,
    CleanStudentContent,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    SaveVerdictGrades,
    SaveRecords,
    AssignLatePenalties,
    ExplainLatePenalty,  # after AssignLatePenalties: says why in the notebook, hence in the feedback
    ShowRubrics,  # the instructor's model answer beside each hand-graded answer, for the formgrader
    CheckCellMetadata,
]

# Limits for one student's notebook (see SandboxedExecute for all settings).
c.SandboxedExecute.timeout = 60
c.SandboxedExecute.notebook_timeout = 600
c.SandboxedExecute.memory_limit_mb = 4096
c.SandboxedExecute.max_processes = 64
# Challenges draw their hidden test images from this secret; the student's sandbox never sees it.
# A course sets its own in the grader's environment; without one, challenges are not scored (`mlphys demo`
# and `mlphys check` set a demo secret when none is set).
c.SandboxedExecute.challenge_secret = os.environ.get("MLPHYS_CHALLENGE_SECRET", "")
# Only where no sandbox can be made and the instructor accepts the risk:
# c.SandboxedExecute.allow_unsandboxed = True

# The retraining check of `mlphys leaderboard` (budget rule of challenges):
c.Leaderboard.retrain_top = 2  # best unchecked entries per board
c.Leaderboard.retrain_timeout = 900
# An entry reproduces when its retrained figure stays within its challenge's band (Challenge.retrain_band; 03:
# retrained cost on inverted images <= submitted * 1.5 + 0.0005). A course may set its own, per assignment:
# c.Leaderboard.retrain_bands = {"03_autoencoder_challenge": {"rel_tol": 0.5, "abs_tol": 0.0005}}

# Feedback shows visible tests and verdicts; hidden tests are already gone from autograded notebooks,
# and this strips any that might remain.
c.GenerateFeedback.preprocessors = [GetGrades, HideRubrics, ClearHiddenTests, FitFigures]
c.ClearHiddenTests.enforce_metadata = False
# Students' markdown may hold HTML too: sanitise it in feedback pages.
c.HTMLExporter.sanitize_html = True
# That setting does not reach nbgrader's feedback and formgrade templates, which render markdown and
# gradebook names raw. Both pages render through HTMLExporter: clean every notebook they render (also
# ones autograded before CleanStudentContent existed), escape gradebook names, and pass all rendered
# markdown through the nh3 sanitiser.
c.HTMLExporter.preprocessors = [CleanStudentContent, EscapeGradebookNames, FitFigures]
# FitFigures is nbconvert's page style plus a rule that keeps wide figures within the page; it replaces
# the stock one, which would overwrite that rule.
c.CSSHTMLHeaderPreprocessor.enabled = False
c.FitFigures.enabled = True
c.HTMLExporter.filters = {"markdown2html": markdown_to_safe_html}
