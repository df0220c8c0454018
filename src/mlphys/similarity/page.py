"""The report's HTML page: one static, self-contained file (no script, nothing from a CDN), for instructors only.

Everything that comes from a submission (code, prose, student and folder names, the hook's lines) is escaped
here or by copydetect's highlighter (markupsafe): a student's ``<script>`` is shown, never run.
"""

from __future__ import annotations

import datetime
import html
import typing as t

from mlphys.similarity import compare

if t.TYPE_CHECKING:
    from mlphys.similarity.report import Entry, Pair, Report

# Pairs listed in the page's table of all pairs (every pair is in pairs.csv).
TABLE_ROWS = 200
# Flagged pairs shown side by side, most alike first: each shows two whole solutions, and a cohort that shares a
# leaked solution would make a page of many megabytes.  The others are in the table and in pairs.csv.
SIDE_BY_SIDE = 50

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ccc; } h3 { margin-bottom: .3rem; }
.note { color: #555; max-width: 60rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #ccc; padding: .2rem .5rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.flagged td { background: #fff1f0; }
.side { display: grid; grid-template-columns: 1fr 1fr; gap: .8rem; }
.side h4 { margin: .3rem 0; }
pre { background: #f7f7f7; border: 1px solid #ddd; padding: .5rem; overflow-x: auto; max-height: 40rem;
      white-space: pre-wrap; word-break: break-word; font-size: .8rem; }
mark.a { background: #ffc9c9; } mark.b { background: #c9f0d0; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _name(entry: Entry) -> str:
    submission = entry.submission
    if submission.reference is None:
        return _e(submission.student)
    return f"{_e(submission.student)} <small>(earlier year: {_e(submission.reference)})</small>"


def _percent(value: float) -> str:
    return f"{value:.0%}"


def _side_by_side(pair: Pair, what: str, left: str, right: str, overlap: compare.Overlap) -> str:
    return (
        f'<div class="side"><div><h4>{_name(pair.a)}: {what}</h4><pre>'
        f"{compare.highlighted(left, overlap.slices[0], 'a')}</pre></div>"
        f"<div><h4>{_name(pair.b)}: {what}</h4><pre>{compare.highlighted(right, overlap.slices[1], 'b')}</pre></div>"
        "</div>"
    )


def _flagged(report: Report) -> str:
    if not report.flagged:
        return "<p>No pair is flagged.</p>"
    parts = []
    for number, pair in enumerate(report.flagged[:SIDE_BY_SIDE], 1):
        a, b = pair.code.similarity
        ta, tb = pair.text.similarity
        parts.append(
            f'<section id="pair-{number}"><h3>{number}. {_name(pair.a)} ~ {_name(pair.b)}</h3>'
            f"<p>Flagged for its {_e(pair.flagged)}. Code: {_percent(a)} of the first's found in the second's, "
            f"{_percent(b)} of the second's in the first's ({pair.code.chars} characters of tokens in common). "
            f"Prose answers: {_percent(ta)} / {_percent(tb)} ({pair.text.chars} characters).</p>"
        )
        parts.append(_side_by_side(pair, "solution cells", pair.a.code_text, pair.b.code_text, pair.code))
        if pair.text.chars:
            parts.append(_side_by_side(pair, "markdown answers (as compared)", pair.a.prose, pair.b.prose, pair.text))
        parts.append("</section>")
    if len(report.flagged) > SIDE_BY_SIDE:
        parts.append(
            f"<p>{len(report.flagged) - SIDE_BY_SIDE} more flagged pairs are not shown side by side: they are in the "
            "table below and in pairs.csv.</p>"
        )
    return "\n".join(parts)


def _extra(report: Report) -> str:
    if report.extra is None:
        return ""
    rows = "".join(f"<tr><td>{_e(student)}</td><td>{_e(text)}</td></tr>" for student, text in report.extra)
    body = f"<table><tr><th>student</th><th>finding</th></tr>{rows}</table>" if rows else "<p>Nothing to report.</p>"
    return f'<h2 id="extra">Further checks of this assignment</h2>\n{body}'


def _not_compared(report: Report) -> str:
    if not report.not_compared:
        return ""
    rows = "".join(
        f"<tr><td>{_e(s.student)}</td><td>{'partly' if s.compared else 'no'}</td><td>{_e(problem)}</td></tr>"
        for s in report.not_compared
        for problem in s.problems
    )
    return (
        '<h2 id="not-compared">Not compared</h2>\n'
        "<p class=note>Submissions that could not be read in full: “no” were not compared at all, “partly” "
        "without the notebooks named.</p>"
        f"<table><tr><th>student</th><th>compared</th><th>problem</th></tr>{rows}</table>"
    )


def _table(report: Report) -> str:
    shown = [p for p in report.pairs if p.code.chars or p.text.chars][:TABLE_ROWS]
    rows = []
    for pair in shown:
        numbers = (*map(_percent, pair.code.similarity), pair.code.chars, *map(_percent, pair.text.similarity))
        rows.append(
            f'<tr class="{"flagged" if pair.flagged else ""}"><td>{_name(pair.a)}</td><td>{_name(pair.b)}</td>'
            + "".join(f'<td class="num">{number}</td>' for number in numbers)
            + f"<td>{'yes' if pair.flagged else 'no'}</td></tr>"
        )
    return (
        '<h2 id="pairs">Most alike pairs</h2>\n'
        f"<p class=note>The {len(shown)} most alike pairs with anything in common; every pair is in pairs.csv.</p>"
        "<table><tr><th>student a</th><th>student b</th><th>code of a in b</th><th>code of b in a</th>"
        "<th>characters in common</th><th>prose a in b</th><th>prose b in a</th><th>flagged</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def render(report: Report) -> str:
    """The whole page."""
    compared = sum(s.compared for s in report.students)
    references = sum(s.compared for s in report.references)
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    earlier = f" and {references} submissions of earlier years" if report.references else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="robots" content="noindex">
<title>Similarity report: {_e(report.assignment)}</title>
<style>{STYLE}</style></head>
<body>
<h1>Similarity report: {_e(report.assignment)}</h1>
<p class=note><strong>For instructors only:</strong> this page names students and shows their code. A flagged pair is
a reason to look, not a finding: short exercises have few ways to be solved.</p>
<p>{len(report.flagged)} of {len(report.pairs)} pairs flagged; {compared} of {len(report.students)} students
compared{earlier}. Written {_e(when)}.</p>
<p class=note>Compared: the solution cells of each student's notebooks, the code tokenised (names, comments and
layout do not count) and the released template's code removed; markdown answers separately, as words. A pair is
flagged when at least {report.threshold:.0%} of one student's code (or prose) is found in the other's, and at
least a few lines of it. Matching regions are highlighted.</p>
<h2 id="flagged">Flagged pairs</h2>
{_flagged(report)}
{_extra(report)}
{_not_compared(report)}
{_table(report)}
</body></html>
"""


__all__ = ["render"]
