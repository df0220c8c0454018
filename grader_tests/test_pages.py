"""Feedback and formgrader pages run no script a student (or a gradebook name) brings in.

Unit tests clean crafted notebooks; browser tests grade a tiny throwaway assignment with the course's
``nbgrader_config.py``, then load its feedback page and the formgrader's manual-grading page (a real
``jupyter server``) in headless Chromium. Every payload would set ``window.__pwned`` if any script ran.
"""

from __future__ import annotations

import base64
import copy
import glob
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from conftest import CHROMEDRIVER, CHROMIUM, REPO, TEST_LIMITS, formgrader_server, headless_chromium, run_nbgrader
from mlphys.grading.pages import (
    PLACEHOLDER_PNG,
    CleanStudentContent,
    EscapeGradebookNames,
    clean_markdown,
    markdown_to_safe_html,
    unsafe_markdown,
)

ASSIGNMENT = "pages_demo"
STUDENT = "stu_pages"
PNG = PLACEHOLDER_PNG  # a valid 1x1 PNG: an <img> of it fires onload
SVG = base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg" onload="window.__pwned=20"/>').decode()
HONEST = "Honest words first: the relu network trains faster, $x < 0$ gives zero gradient."
FIRST_NAME = '<img src=x onerror="window.__pwned=14">Ada'
LAST_NAME = "<script>window.__pwned=15</script>Lovelace"

# Each would run script (on load, without any click) in today's pages, or on a click (the links).
WRITTEN_ANSWER = f"""{HONEST}

<img src=x onerror="window.__pwned=1">

<script>window.__pwned=2</script>

Inline <svg><animate onbegin="window.__pwned=3" attributeName="x" dur="1s"/></svg> too.
"""
MARKDOWN_PAYLOADS = [
    '<iframe srcdoc="<script>parent.__pwned=4</script>"></iframe>',
    '<details open ontoggle="window.__pwned=5"><summary>s</summary>d</details>',
    '<a href="javascript:window.__pwned=6">click</a> and [click me](javascript:window.__pwned=7)',
    '```mermaid\n</pre><img src=x onerror="window.__pwned=8">\n```',
    '<object data="data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX19wd25lZD05PC9zY3JpcHQ+"></object>',
    '<p>![attached](attachment:evil.svg) <img src="data:image/svg+xml;base64,' + SVG + '"></p>',
]
ATTACHMENTS = {
    "evil.svg": {"image/svg+xml": SVG},
    "evil.html": {"text/html": base64.b64encode(b"<script>window.__pwned=21</script>").decode()},
    "broken.png": {"image/png": 'x" onerror="window.__pwned=22'},
}
STUDENT_CODE = f"""
from IPython.display import display
png = "{PNG}"
display({{"image/png": png}}, raw=True, metadata={{"image/png": {{"width": "1 onload=window.__pwned=10"}}}})
display({{"image/png": png}}, raw=True, metadata={{"height": "2 onload=window.__pwned=11", "alt": "plot"}})
display({{"image/png": png}}, raw=True, metadata={{"image/png": {{"width": 40, "height": 30}}}})
answer = 42
"""


# --- unit tests on crafted notebooks --------------------------------------------------------------------------


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    cleaned, _ = CleanStudentContent().preprocess(copy.deepcopy(nb), {})
    return cleaned


def test_honest_markdown_of_every_course_notebook_is_kept_byte_for_byte() -> None:
    notebooks = sorted(glob.glob(str(REPO / "source" / "*" / "*.ipynb")))
    assert notebooks
    for path in notebooks:
        nb = nbformat.read(path, 4)
        kept = clean(nb)
        markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
        assert markdown and [c.source for c in kept.cells if c.cell_type == "markdown"] == markdown, path
    honest = "# Title\n\n*Math* $a<b$, `x < y`, a > b, &copy; [docs](https://numpy.org) [sec](#part-2)\n\n"
    honest += "```python\nx = 1\n```"
    assert clean_markdown(honest) == honest


@pytest.mark.parametrize("payload", [WRITTEN_ANSWER, *MARKDOWN_PAYLOADS])
def test_markdown_that_would_put_raw_content_into_a_page_is_shown_as_written(payload: str) -> None:
    cleaned = clean_markdown(payload, ATTACHMENTS)
    assert cleaned != payload
    assert payload.rstrip("\n") in cleaned  # the student's text is all there, literally
    assert unsafe_markdown(cleaned) == []
    assert clean_markdown(cleaned) == cleaned  # a second pass changes nothing


def test_attachments_keep_only_images_with_valid_base64() -> None:
    cell = new_markdown_cell("![ok](attachment:ok.png) ![x](attachment:evil.svg)")
    cell.attachments = {**ATTACHMENTS, "ok.png": {"image/png": PNG, "text/html": "<b>x</b>"}}
    kept = clean(new_notebook(cells=[cell])).cells[0]
    assert kept.attachments["ok.png"] == {"image/png": PNG}
    for name in ATTACHMENTS:  # nothing usable left: a blank placeholder, so attachment: links still render
        assert kept.attachments[name] == {"image/png": PLACEHOLDER_PNG}
    assert kept.source == cell.source


def test_image_output_metadata_keeps_only_positive_integer_sizes() -> None:
    outputs = [
        new_output("display_data", {"image/png": PNG}, metadata=meta)
        for meta in (
            {"image/png": {"width": "1 onload=window.__pwned=10", "height": 30}},
            {"width": 40.0, "height": True, "filenames": {"image/png": "https://evil.example/x.png"}},
            {"image/png": {"width": -3, "height": 0, "unconfined": True, "alt": '"><script>'}},
        )
    ]
    outputs.append(new_output("display_data", {"image/png": "not base64!", "text/plain": "fig"}))
    cell = new_code_cell("plot()", outputs=outputs)
    cell.metadata = {"alt": "x", "nbgrader": {"grade_id": "g"}, "tags": ["a"], "jupyter": {"x": 1}}
    nb = new_notebook(cells=[cell])
    nb.cells[0].execution_count = "1<script>"  # a kernel's reply, not validated on the way in
    kept = clean(nb).cells[0]
    assert [o.metadata for o in kept.outputs] == [{"image/png": {"height": 30}}, {"image/png": {"width": 40}}, {}, {}]
    assert kept.outputs[3].data == {"text/plain": "fig"}
    assert kept.execution_count is None
    assert kept.metadata == {"nbgrader": {"grade_id": "g"}, "tags": ["a"]}


def test_notebook_metadata_keeps_only_kernel_and_language_names() -> None:
    nb = new_notebook(cells=[new_raw_cell('<img src=x onerror="window.__pwned=13">')])
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python", "codemirror_mode": {"name": "ipython"}},
        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {"<script>": 1}}},
    }
    kept = clean(nb)
    assert kept.metadata == {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    assert kept.cells[0].source == '<img src="x">'


def test_locked_instructor_cells_keep_their_html_and_pages_sanitise_it_on_render() -> None:
    source = '<div class="alert">Read <b>this</b> <img src=x onerror="window.__pwned=1"></div>'
    cell = new_markdown_cell(source)
    cell.metadata["nbgrader"] = {"grade_id": "intro", "locked": True, "solution": False}
    assert clean(new_notebook(cells=[cell])).cells[0].source == source
    rendered = markdown_to_safe_html({"cell": cell}, source)
    assert "<b>this</b>" in rendered and "onerror" not in rendered and "alert" not in rendered


def test_rendered_markdown_keeps_formatting_and_inline_images_only() -> None:
    source = (
        '**bold** [site](https://numpy.org) ![plot](attachment:ok.png) <img src="https://tracker.example/p.png">'
        ' <a href="data:text/html,x">d</a> <a href=" JavaScript:x">j</a> <b id="statusmessage">b</b>'
    )
    cell = new_markdown_cell(source, attachments={"ok.png": {"image/png": PNG}})
    rendered = markdown_to_safe_html({"cell": cell}, source)
    assert "<strong>bold</strong>" in rendered and 'href="https://numpy.org"' in rendered
    assert f'src="data:image/png;base64,{PNG}"' in rendered
    for gone in ("tracker.example", "data:text/html", "JavaScript", "statusmessage"):
        assert gone not in rendered


def test_gradebook_names_are_escaped_in_page_resources() -> None:
    resources = {"first_name": FIRST_NAME, "last_name": LAST_NAME, "student": "s<b>", "index": 0}
    _, escaped = EscapeGradebookNames().preprocess(new_notebook(), dict(resources))
    assert escaped["first_name"] == "&lt;img src=x onerror=&quot;window.__pwned=14&quot;&gt;Ada"
    assert escaped["last_name"] == "&lt;script&gt;window.__pwned=15&lt;/script&gt;Lovelace"
    assert escaped["student"] == "s&lt;b&gt;" and escaped["index"] == 0


# --- the pages in a real browser ----------------------------------------------------------------------------------


# A figure far wider than any page (02's four panels overflowed feedback and formgrader pages).
WIDE_FIGURE = "import matplotlib.pyplot as plt\nplt.figure(figsize=(40, 2))\nplt.plot([0, 1])\nplt.show()"


def figures_fit(driver) -> list[bool]:
    """For each plot on the page: does it stay within its notebook cell (and the page's body)?"""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.output_png img')).map(i => {"
        "  const right = i.getBoundingClientRect().right;"
        "  const cell = i.closest('div.cell') || document.body;"
        "  return right <= cell.getBoundingClientRect().right + 1"
        "      && right <= document.body.getBoundingClientRect().right + 1; })"
    )


def source_notebook() -> nbformat.NotebookNode:
    def meta(grade_id: str, **flags: object) -> dict:
        base = {"grade_id": grade_id, "schema_version": 3, "grade": False, "solution": False, "locked": False}
        return {"nbgrader": {**base, **flags}}

    return new_notebook(
        cells=[
            new_markdown_cell("# Pages demo\n\nAnswer below.", metadata=meta("intro", locked=True)),
            new_code_cell("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION", metadata=meta("code", solution=True)),
            new_markdown_cell(
                "YOUR ANSWER HERE", metadata=meta("written", solution=True, grade=True, points=1, task=False)
            ),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )


def submission(release: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(release, 4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.source = STUDENT_CODE
    written = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "written")
    written.source = WRITTEN_ANSWER
    written.attachments = ATTACHMENTS
    extra = []
    for payload in MARKDOWN_PAYLOADS:
        cell = new_markdown_cell(payload)
        cell.attachments = ATTACHMENTS
        extra.append(cell)
    raw = new_raw_cell('<img src=x onerror="window.__pwned=13">', metadata={"raw_mimetype": "text/html"})
    wide = new_code_cell(WIDE_FIGURE)
    nb.cells.extend([*extra, raw, wide])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    return nb


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pages_course")
    (root / "nbgrader_config.py").write_text((REPO / "nbgrader_config.py").read_text() + TEST_LIMITS)
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(source_notebook(), root / "source" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    for args in (
        ("generate_assignment", ASSIGNMENT, "--force"),
        ("db", "student", "add", STUDENT, f"--first-name={FIRST_NAME}", f"--last-name={LAST_NAME}"),
    ):
        done = run_nbgrader(root, *args)
        assert done.returncode == 0, done.stderr[-3000:]
    submitted = root / "submitted" / STUDENT / ASSIGNMENT
    submitted.mkdir(parents=True)
    release = root / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nbformat.write(submission(release), submitted / f"{ASSIGNMENT}.ipynb")
    for args in (("autograde", ASSIGNMENT, "--force"), ("generate_feedback", ASSIGNMENT, "--force")):
        done = run_nbgrader(root, *args)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return root


def autograded_path(root: Path) -> Path:
    return root / "autograded" / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"


def feedback_path(root: Path) -> Path:
    return root / "feedback" / STUDENT / ASSIGNMENT / f"{ASSIGNMENT}.html"


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium through selenium."""
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), "scripts/setup.sh installs chromium and chromium-driver"
    with headless_chromium() as driver:
        driver.set_page_load_timeout(60)
        yield driver


@pytest.fixture(scope="module")
def formgrader(graded_course: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real ``jupyter server`` with nbgrader's formgrader, in the course directory: (base URL, token)."""
    with formgrader_server(graded_course, tmp_path_factory.mktemp("pages-home")) as server:
        yield server


def assert_no_script_ran(driver) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    time.sleep(1.0)  # let load, error and animation handlers fire
    assert driver.execute_script("return typeof window.__pwned") == "undefined", driver.execute_script(
        "return window.__pwned"
    )
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 -- reading it is what raises
    links = driver.execute_script(
        "return Array.from(document.querySelectorAll('a[href], area[href]')).map(a => a.href)"
        ".filter(h => !['http:', 'https:', 'mailto:', 'file:'].includes(new URL(h).protocol))"
    )
    assert links == []  # no javascript:, data: or other link that would run on a click


def page_text(driver) -> str:
    return driver.execute_script("return document.body.innerText")


def test_feedback_page_runs_no_student_script(graded_course: Path, browser) -> None:
    browser.get(feedback_path(graded_course).resolve().as_uri())
    assert_no_script_ran(browser)
    text = page_text(browser)
    assert HONEST.split("$")[0] in text  # the honest answer is there...
    assert "<script>window.__pwned=2</script>" in text  # ...and the payload shown as text
    sizes = browser.execute_script(
        "return Array.from(document.querySelectorAll('.output_png img'))"
        ".map(i => [i.complete && i.naturalWidth, i.getAttribute('width'), i.getAttribute('height')])"
    )
    assert sizes[:3] == [[1, None, None], [1, None, None], [1, "40", "30"]]  # plots shown; only the valid size kept
    assert len(sizes) == 4 and sizes[3][0] > 2000  # the wide figure is there...
    assert figures_fit(browser) == [True] * 4  # ...and fits the page


def test_feedback_of_a_notebook_autograded_before_the_fix_runs_no_script(
    graded_course: Path, browser, tmp_path: Path
) -> None:
    """A stale autograded notebook (written raw, as an older grader left it) is cleaned when feedback renders it."""
    course = tmp_path / "course"
    shutil.copytree(graded_course, course, ignore=shutil.ignore_patterns("feedback", "server.log"))
    stale = submission(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    code = next(c for c in stale.cells if c.cell_type == "code")
    code.outputs = [
        new_output("display_data", {"image/png": PNG}, metadata={"width": "1 onload=window.__pwned=10"}),
    ]
    code.execution_count = 1
    nbformat.write(stale, autograded_path(course))
    done = run_nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
    assert done.returncode == 0, done.stderr[-3000:]
    browser.get(feedback_path(course).resolve().as_uri())
    assert_no_script_ran(browser)
    assert "<script>window.__pwned=2</script>" in page_text(browser)


def test_autograded_notebook_on_disk_is_clean(graded_course: Path) -> None:
    nb = nbformat.read(autograded_path(graded_course), 4)
    written = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "written")
    assert written.source != WRITTEN_ANSWER and WRITTEN_ANSWER.rstrip("\n") in written.source
    assert all(unsafe_markdown(c.source, c.get("attachments")) == [] for c in nb.cells if c.cell_type == "markdown")
    metadata = [o.metadata for c in nb.cells if c.cell_type == "code" for o in c.outputs if "metadata" in o]
    assert metadata == [{}, {}, {"image/png": {"width": 40, "height": 30}}, {}]  # the last: the wide figure
    assert "widgets" not in nb.metadata


def test_formgrader_manual_grading_page_runs_no_student_script(graded_course: Path, formgrader, browser) -> None:
    from nbgrader.api import Gradebook

    base, token = formgrader
    with Gradebook(f"sqlite:///{graded_course / 'gradebook.db'}") as gb:
        submission_id = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, STUDENT).id
    browser.get(f"{base}/formgrader/submissions/{submission_id}/?token={token}")
    assert_no_script_ran(browser)
    text = browser.execute_script("return document.body.textContent")
    assert HONEST.split("$")[0] in text and "<script>window.__pwned=2</script>" in text
    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('a.name-shown')).map(a => a.textContent)"
    )
    assert [name.strip() for name in shown] == [f"{LAST_NAME}, {FIRST_NAME}"]  # the names, as text
    sizes = browser.execute_script(
        "return Array.from(document.querySelectorAll('.output_png img'))"
        ".map(i => [i.complete && i.naturalWidth, i.getAttribute('width'), i.getAttribute('height')])"
    )
    assert sizes[:3] == [[1, None, None], [1, None, None], [1, "40", "30"]]
    assert len(sizes) == 4 and figures_fit(browser) == [True] * 4  # the wide figure fits the page too


@pytest.mark.parametrize("page", ["manage_students", f"gradebook/{ASSIGNMENT}/{ASSIGNMENT}", "manage_submissions"])
def test_formgrader_lists_show_gradebook_names_as_text(graded_course: Path, formgrader, browser, page: str) -> None:
    base, token = formgrader
    url = f"{base}/formgrader/{page}?token={token}"
    if page == "manage_submissions":
        url = f"{base}/formgrader/manage_submissions/{ASSIGNMENT}?token={token}"
    browser.get(url)
    deadline = time.monotonic() + 20
    while LAST_NAME not in browser.execute_script("return document.body.textContent"):
        assert time.monotonic() < deadline, page_text(browser)
        time.sleep(0.25)
    assert_no_script_ran(browser)
