"""What students control, made safe for the pages that show it: the feedback page and the formgrader.

Both pages are nbconvert HTML renderings of the autograded notebook through nbgrader's own templates,
which render a markdown cell's source with raw HTML passed through, put an image output's ``width`` and
``height`` metadata into an unquoted attribute, and put gradebook names into the page as they are.
``HTMLExporter.sanitize_html`` does not reach those templates.  Three layers close that, all plugged in
through ``nbgrader_config.py``:

- :class:`CleanStudentContent` (autograde, so the notebook on disk is clean; and every page render, for
  notebooks autograded before it existed) keeps a markdown cell's source when it renders to nothing
  but mistune's own escaped output, and otherwise shows that source as literal text in a code block;
  it keeps only image attachments with valid base64, only positive integer sizes in output metadata,
  and only the cell and notebook metadata that nbgrader and the templates need.
- :func:`markdown_to_safe_html` replaces the pages' ``markdown2html`` filter: whatever markdown a page
  renders (cells, and instructors' comments in feedback) goes through the nh3 sanitiser on its way out,
  whatever nbconvert or mistune version renders it.
- :class:`EscapeGradebookNames` HTML-escapes the student's names and id in the formgrader's page
  resources, which nbgrader's template inserts raw.  Names stay as typed in the gradebook (an LMS
  may own them); they are escaped where they become HTML.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import typing as t
import urllib.parse

import jinja2
import nh3
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor, Preprocessor
from nbformat import NotebookNode
from pygments.token import STANDARD_TYPES
from traitlets import Bool

__all__ = [
    "CleanStudentContent",
    "EscapeGradebookNames",
    "clean_attachments",
    "clean_markdown",
    "clean_output_metadata",
    "markdown_to_safe_html",
    "sanitise_html",
]

# Image types a data URL may carry into a page (the ones mistune itself accepts); SVG is not among them:
# opened on its own, an SVG document runs script.
IMAGE_MIME_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
SHOWN_AS_TEXT_NOTE = "*This cell held HTML or links that grading pages do not render; it is shown as written:*"
MAX_IMAGE_SIZE = 10_000  # pixels; a larger width or height is not a plot
# A 1x1 transparent PNG stands in for an attachment that was removed, so that `attachment:` links to it
# still render (nbconvert stops the whole page at a missing attachment).
PLACEHOLDER_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

# What a page keeps of rendered markdown: nh3's default tags and attributes (no script, style, event
# handlers, forms or frames), classes only where nbconvert's own highlighting and heading links use them,
# and no `id`, so that no cell can shadow an element of the formgrader's own page.
_ALLOWED_CLASSES = {
    "span": {c for c in STANDARD_TYPES.values() if c},
    "div": {"highlight"},
    "a": {"anchor-link"},
}
_URL_SCHEMES = {"http", "https", "mailto"}
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*", re.IGNORECASE)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src":
        # Inline images only; a remote image would tell its owner who opened the page, and when.
        if _DATA_IMAGE.fullmatch(value):
            return value
        return value if _is_relative_path(value) else None
    if attribute in ("href", "cite") and "".join(ch for ch in value if ch > " ").lower().startswith("data:"):
        return None  # `data` is among the URL schemes for inline images only
    return value


def sanitise_html(fragment: str) -> str:
    """``fragment`` with everything that could run script, load remote content or restyle the page removed."""
    return nh3.clean(
        fragment,
        allowed_classes=_ALLOWED_CLASSES,
        url_schemes=_URL_SCHEMES | {"data"},
        attribute_filter=_attribute_filter,
        link_rel="noopener noreferrer",
    )


def _is_relative_path(url: str) -> bool:
    """A URL without scheme or host: it resolves inside the page's own server, as the notebook's files do."""
    plain = "".join(ch for ch in html.unescape(url) if ch > " ")
    if plain.startswith(("/", "\\")):
        return False
    return urllib.parse.urlsplit(plain).scheme == ""


def _is_safe_url(url: str) -> bool:
    """Whether a link or image URL in markdown can be shown as is: http(s), mailto, an inline image, or a path."""
    plain = "".join(ch for ch in html.unescape(urllib.parse.unquote(url)) if ch > " ").lower()
    if _DATA_IMAGE.fullmatch(plain):
        return True
    if plain.startswith("#"):
        return True
    scheme = urllib.parse.urlsplit(plain).scheme
    return scheme in _URL_SCHEMES or (scheme == "" and not plain.startswith(("//", "\\", "/\\")))


class _Inspector(IPythonRenderer):
    """nbconvert's markdown renderer, noting every construct whose output is not mistune's own escaping.

    Everything mistune renders from markdown syntax is escaped text in fixed tags, except raw HTML
    (inline and block), link and image URLs (nbconvert lets any scheme through, ``javascript:``
    included), and nbconvert's mermaid blocks (whose code goes into the page unescaped).
    """

    def __init__(self, attachments: dict[str, t.Any]) -> None:
        super().__init__(escape=False, attachments=attachments)
        self.found: list[str] = []

    def inline_html(self, html: str) -> str:
        self.found.append("raw HTML")
        return super().inline_html(html)

    def block_html(self, html: str) -> str:
        self.found.append("raw HTML")
        return super().block_html(html)

    def block_mermaidjs(self, code: str) -> str:
        self.found.append("mermaid block")
        return super().block_mermaidjs(code)

    def sanitize_url(self, url: str) -> str:
        if not _is_safe_url(url):
            self.found.append("unsafe URL")
        return super().sanitize_url(url)


def unsafe_markdown(source: str, attachments: dict[str, t.Any] | None = None) -> list[str]:
    """The constructs in ``source`` that would put unescaped content into a page (empty: none)."""
    inspector = _Inspector(dict(attachments or {}))
    try:
        MarkdownWithMath(renderer=inspector).render(source)
    except Exception as error:  # a missing attachment, a recursion limit: not renderable as is
        return [f"rendering failed ({type(error).__name__})"]
    return inspector.found


def _shown_as_text(source: str) -> str:
    """Markdown that shows ``source`` verbatim: a fenced code block longer than any backtick run in it."""
    longest = max((len(run) for run in re.findall(r"`+", source)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{SHOWN_AS_TEXT_NOTE}\n\n{fence}text\n{source.rstrip(chr(10))}\n{fence}\n"


def clean_markdown(source: str, attachments: dict[str, t.Any] | None = None) -> str:
    """``source`` itself if it renders to escaped output only, else the same text as a literal code block."""
    if not unsafe_markdown(source, attachments):
        return source
    return _shown_as_text(source)


def _valid_base64(data: t.Any) -> bool:
    if not isinstance(data, str):
        return False
    try:
        base64.b64decode("".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def clean_attachments(attachments: t.Any) -> dict[str, dict[str, str]]:
    """Only image attachments with valid base64; a name left with nothing gets a blank placeholder image."""
    if not isinstance(attachments, dict):
        return {}
    cleaned: dict[str, dict[str, str]] = {}
    for name, bundle in attachments.items():
        if not isinstance(name, str):
            continue
        kept = {}
        if isinstance(bundle, dict):
            kept = {m: d for m, d in bundle.items() if m in IMAGE_MIME_TYPES and _valid_base64(d)}
        cleaned[name] = kept or {"image/png": PLACEHOLDER_PNG}
    return cleaned


def _size(value: t.Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != int(value) or not 0 < value <= MAX_IMAGE_SIZE:
        return None
    return int(value)


def clean_output_metadata(output: NotebookNode) -> dict[str, dict[str, int]]:
    """An output's metadata reduced to positive integer ``width``/``height`` per image type it holds."""
    metadata = output.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    cleaned: dict[str, dict[str, int]] = {}
    for mime in output.get("data", {}):
        if not mime.startswith("image/"):
            continue
        specific = metadata.get(mime) if isinstance(metadata.get(mime), dict) else {}
        sizes = {}
        for key in ("width", "height"):
            size = _size(specific.get(key, metadata.get(key)))
            if size is not None:
                sizes[key] = size
        if sizes:
            cleaned[mime] = sizes
    return cleaned


def _clean_cell_metadata(metadata: t.Any) -> dict[str, t.Any]:
    """The cell metadata nbgrader works with (its own key, already checked against the gradebook) and tags."""
    metadata = metadata if isinstance(metadata, dict) else {}
    kept: dict[str, t.Any] = {}
    if isinstance(metadata.get("nbgrader"), dict):
        kept["nbgrader"] = metadata["nbgrader"]
    tags = metadata.get("tags")
    if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
        kept["tags"] = tags
    return kept


def _clean_notebook_metadata(metadata: t.Any) -> dict[str, t.Any]:
    """Kernel and language names only: widget state and the like would put script into the page's footer."""
    metadata = metadata if isinstance(metadata, dict) else {}
    kept: dict[str, t.Any] = {}
    for key in ("kernelspec", "language_info"):
        value = metadata.get(key)
        if isinstance(value, dict):
            kept[key] = {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}
    return kept


def _instructor_cell(cell: NotebookNode) -> bool:
    """A locked cell: by autograde its source is the instructor's, put back from the gradebook."""
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return isinstance(meta, dict) and meta.get("locked") is True and not meta.get("solution")


class CleanStudentContent(Preprocessor):
    """Sanitise what a student controls in a notebook before a page renders it.

    For autograde it comes after execution (outputs exist) and sanitising outputs; as an
    ``HTMLExporter`` preprocessor it cleans every notebook the feedback and formgrader pages render.
    Running it twice changes nothing the second time.
    """

    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, t.Any]) -> tuple[NotebookNode, dict[str, t.Any]]:
        nb.metadata = NotebookNode(_clean_notebook_metadata(nb.get("metadata")))
        return super().preprocess(nb, resources)

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, t.Any], index: int
    ) -> tuple[NotebookNode, dict[str, t.Any]]:
        cell.metadata = NotebookNode(_clean_cell_metadata(cell.get("metadata")))
        if "attachments" in cell:
            cell.attachments = NotebookNode(clean_attachments(cell.attachments))
        if cell.cell_type == "markdown" and not _instructor_cell(cell):
            cleaned = clean_markdown(cell.source, cell.get("attachments"))
            if cleaned != cell.source:
                self.log.warning(
                    "Cell %d holds %s; shown as text",
                    index,
                    ", ".join(sorted(set(unsafe_markdown(cell.source, cell.get("attachments"))))),
                )
                cell.source = cleaned
        elif cell.cell_type == "raw":
            cell.source = sanitise_html(cell.source)
        elif cell.cell_type == "code":
            self._clean_code_cell(cell)
        return cell, resources

    def _clean_code_cell(self, cell: NotebookNode) -> None:
        if not isinstance(cell.get("execution_count"), int) or isinstance(cell.get("execution_count"), bool):
            cell.execution_count = None
        for output in cell.get("outputs", []):
            if "execution_count" in output and not isinstance(output.execution_count, int):
                output.execution_count = None
            data = output.get("data")
            if not isinstance(data, dict):
                continue
            for mime in [m for m in data if m.startswith("image/")]:
                if not _valid_base64(data[mime]):
                    del data[mime]
            if "data" in output and not data:
                data["text/plain"] = "[image output with invalid data not shown]"
            if "metadata" in output:
                output.metadata = NotebookNode(clean_output_metadata(output))


class EscapeGradebookNames(Preprocessor):
    """HTML-escape the student's names and id in the formgrader's page resources.

    nbgrader's formgrade template writes ``resources.first_name``, ``last_name`` and ``student`` into the
    page unescaped; the gradebook keeps them as entered (by ``nbgrader db student add``, an import, the
    formgrader's own form, or an LMS sync), so they are escaped here, where they become HTML.
    """

    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, t.Any]) -> tuple[NotebookNode, dict[str, t.Any]]:
        for key in ("first_name", "last_name", "student", "notebook_path"):
            if isinstance(resources.get(key), str):
                resources[key] = html.escape(resources[key])
        return nb, resources


@jinja2.pass_context
def markdown_to_safe_html(context: jinja2.runtime.Context, source: str) -> str:
    """The pages' ``markdown2html`` filter: nbconvert's rendering, then the sanitiser."""
    cell = context.get("cell") or {}
    attachments = cell.get("attachments", {}) if isinstance(cell, dict) else {}
    try:
        rendered = MarkdownWithMath(renderer=IPythonRenderer(escape=False, attachments=attachments)).render(source)
    except Exception:  # a missing attachment, say: show the text rather than fail the whole page
        return f"<pre>{html.escape(source)}</pre>"
    return sanitise_html(rendered)


FIT_FIGURES_CSS = """
/* mlphys: wide figures (several panels) shrink to the page instead of overflowing it */
.output_png img, .output_jpeg img, .jp-OutputArea-output img, .output_subarea img { max-width: 100%; height: auto; }
div.output_subarea { min-width: 0; max-width: 100%; }
"""


class FitFigures(CSSHTMLHeaderPreprocessor):
    """nbconvert's page style, plus the rule that keeps wide figures within the feedback and formgrader pages.

    It takes the place of ``CSSHTMLHeaderPreprocessor`` (which replaces ``resources["inlining"]["css"]``
    wherever it runs, so a rule added beside it could be lost): the configuration switches that one off
    and this one on.
    """

    enabled = Bool(True).tag(config=True)

    def _generate_header(self, resources: dict[str, t.Any]) -> list[str]:
        return [*super()._generate_header(resources), FIT_FIGURES_CSS]
