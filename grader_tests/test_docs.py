"""The documentation site builds without a warning, and the README stays a five-minute read with links that work."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
MKDOCS_YML = REPO / "mkdocs.yml"


@pytest.fixture(scope="module")
def mkdocs_available() -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.fail("MkDocs is missing from this environment: run scripts/setup.sh (it installs the dev extra).")


def nav_pages(entries: list) -> list[str]:
    """Every page a MkDocs nav names, however deep its sections."""
    pages: list[str] = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            pages += nav_pages(value)
        elif not re.match(r"[a-z]+://", value):
            pages.append(value)
    return pages


def test_the_site_builds_strictly(mkdocs_available: None, tmp_path: Path) -> None:
    """mkdocs.yml makes broken links and anchors and pages missing from the nav warnings; --strict fails on any."""
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(MKDOCS_YML)]
    result = subprocess.run(
        [*command, "--site-dir", str(site)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{output}"
    assert "WARNING" not in output, output
    assert (site / "index.html").is_file()


def test_every_page_of_the_nav_exists(mkdocs_available: None) -> None:
    import yaml  # MkDocs' own dependency

    config = yaml.safe_load(MKDOCS_YML.read_text())
    pages = nav_pages(config["nav"])
    assert len(pages) >= 10
    missing = [page for page in pages if not (REPO / config.get("docs_dir", "docs") / page).is_file()]
    assert not missing, f"pages in mkdocs.yml's nav that do not exist: {missing}"


def test_the_readme_is_short_and_its_links_resolve() -> None:
    text = README.read_text()
    assert len(text.splitlines()) < 150, "the README is for newcomers: move details into docs/"
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)]+)\)", text) if not re.match(r"[a-z]+://", t)]
    assert targets, "the README links to the documentation"
    broken = [t for t in targets if t and not (REPO / t).exists()]
    assert not broken, f"README links to files that do not exist: {broken}"
