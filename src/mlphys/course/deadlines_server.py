"""The student's own deadlines for JupyterLab's Assignments list: a Jupyter server extension of the student's server.

nbgrader's Assignments panel lists an assignment's id and course, never its due date.  The instructor's ``mlphys
exam release`` already writes each student's own deadline (with their extension) into the exchange, in the
student's variant file ``<exchange>/<course>/variants/<assignment>/<student>.json``
(:mod:`mlphys.exam.delivery`).  This extension serves, to the logged-in student alone, the deadlines of those
files, ``GET <base_url>/mlphys/deadlines?course_id=C[&assignment_id=A...]`` -> ``{"A": "2026-12-06 11:00:00
(UTC+01:00)"}``; the labextension ``mlphys-deadlines`` (source in ``labextension/`` of the repository, built into
``labextension/`` beside this file) writes "due ..." beside each row of the panel.

Why its own small endpoint and not nbgrader's list: nbgrader's handlers and its panel are nbgrader's (not forked),
and its list has no field for a deadline.  The student is whoever runs the server (:func:`nbgrader.utils.get_username`,
as nbgrader's fetch and submit use); no request names a student, so nobody can ask for another's deadline, and
the server reads only what its Unix user may read anyway.  The exchange root is read from nbgrader's own config,
loaded exactly as nbgrader's assignment list loads it.

Enabled by ``etc/jupyter/jupyter_server_config.d/mlphys-deadlines.json`` (installed with the package), or
``jupyter server extension enable mlphys.course.deadlines_server``.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

ROUTE = "mlphys/deadlines"


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "mlphys.course.deadlines_server"}]


def usable_name(name: str) -> bool:
    """A course, assignment or student id that names one folder or file of the exchange and nothing else."""
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".") and "\0" not in name


def released_assignments(exchange_root: Path, course_id: str) -> list[str]:
    """The assignments released in the course (the exchange's ``outbound`` folders, what nbgrader lists)."""
    outbound = Path(exchange_root) / course_id / "outbound"
    try:
        return sorted(p.name for p in outbound.iterdir() if p.is_dir() and usable_name(p.name))
    except OSError:
        return []


def own_deadline(exchange_root: Path, course_id: str, assignment: str, student: str) -> str | None:
    """``student``'s deadline for ``assignment`` from their own variant file; None where there is none."""
    if not all(usable_name(name) for name in (course_id, assignment, student)):
        return None
    path = Path(exchange_root) / course_id / "variants" / assignment / f"{student}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # no variants for this assignment, not readable by this user, or half written
    if not isinstance(data, dict) or data.get("student") != student:
        return None  # a file that is not this student's own says nothing about their deadline
    deadline = data.get("deadline")
    return deadline if isinstance(deadline, str) and deadline else None


def own_deadlines(
    exchange_root: Path, course_id: str, student: str, assignments: t.Iterable[str] = ()
) -> dict[str, str]:
    """``{assignment: deadline}`` of ``student`` for the asked assignments (default: every released one)."""
    if not usable_name(course_id):
        return {}
    asked = list(assignments) or released_assignments(exchange_root, course_id)
    found = {a: own_deadline(exchange_root, course_id, a, student) for a in asked}
    return {a: d for a, d in found.items() if d is not None}


def _load_jupyter_server_extension(serverapp: t.Any) -> None:
    from jupyter_server.base.handlers import JupyterHandler
    from jupyter_server.utils import url_path_join
    from nbgrader.exchange import ExchangeFactory
    from nbgrader.server_extensions.assignment_list.handlers import AssignmentList
    from nbgrader.utils import get_username
    from tornado import web

    config_source = AssignmentList(parent=serverapp)
    config_source.root_dir = serverapp.root_dir

    class DeadlinesHandler(JupyterHandler):
        """The logged-in student's own deadlines, as JSON."""

        @web.authenticated
        def get(self) -> None:
            with config_source.get_assignment_dir_config() as config:
                course_id = self.get_argument("course_id", "") or str(config.CourseDirectory.course_id or "")
                root = Path(ExchangeFactory(config=config).List(config=config).root)
            deadlines = own_deadlines(root, course_id, get_username(), self.get_arguments("assignment_id"))
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(deadlines))

    base_url = serverapp.web_app.settings["base_url"]
    serverapp.web_app.add_handlers(".*$", [(url_path_join(base_url, ROUTE), DeadlinesHandler)])
    serverapp.log.info("mlphys: the student's own deadlines at /%s", ROUTE)
