"""The static ``index.html``: one self-contained page (inline CSS, inline PNGs, a few lines of optional script).

Every value from a student (their chosen name) goes through Jinja's autoescaping. As a second line of defence
the page carries a Content-Security-Policy that lets only its own script and style (pinned by hash) and
``data:`` images run or load, so even an unescaped ``<script>`` would not execute.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import jinja2
from markupsafe import Markup

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1d2230; background: #fbfbfd; }
h1 { margin-bottom: 0.2rem; }
.note { color: #5a6172; font-size: 0.9rem; }
nav.tabs { display: flex; flex-wrap: wrap; gap: 0.4rem; margin: 1.5rem 0 0.5rem; }
nav.tabs a { padding: 0.4rem 0.9rem; border: 1px solid #c9cedb; border-radius: 0.4rem; text-decoration: none;
             color: #1d2230; background: #fff; }
nav.tabs a.active { background: #1d4ed8; border-color: #1d4ed8; color: #fff; }
html.js section.board-section { display: none; }
html.js section.board-section.active { display: block; }
table.board { border-collapse: collapse; width: 100%; margin: 0.5rem 0 1rem; background: #fff; }
table.board th, table.board td { border-bottom: 1px solid #e3e6ee; padding: 0.35rem 0.6rem; text-align: left; }
table.board td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.board tr.flagged td { background: #fff1f1; color: #8a1c1c; }
table.board tr.invalid td { color: #8a8f9c; }
.badge { display: inline-block; padding: 0 0.4rem; border-radius: 0.3rem; font-size: 0.85rem; }
.badge.reproduced { background: #dcf5e3; color: #14532d; }
.badge.flagged { background: #fcd7d7; color: #8a1c1c; font-weight: 600; }
.badge.unchecked { background: #eceef3; color: #4b5263; }
img { max-width: 100%; height: auto; }
figure { margin: 1rem 0; }
figcaption { color: #5a6172; font-size: 0.9rem; }
"""

SCRIPT = """
(function () {
  var root = document.documentElement;
  var tabs = Array.prototype.slice.call(document.querySelectorAll("nav.tabs a"));
  var sections = Array.prototype.slice.call(document.querySelectorAll("section.board-section"));
  if (!tabs.length) { return; }
  function show(id) {
    var known = sections.some(function (s) { return s.id === id; });
    if (!known) { id = sections[0].id; }
    sections.forEach(function (s) { s.classList.toggle("active", s.id === id); });
    tabs.forEach(function (t) { t.classList.toggle("active", t.getAttribute("href") === "#" + id); });
  }
  tabs.forEach(function (tab) {
    tab.addEventListener("click", function (event) {
      event.preventDefault();
      var id = tab.getAttribute("href").slice(1);
      show(id);
      if (history.replaceState) { history.replaceState(null, "", "#" + id); }
    });
  });
  root.classList.add("js");
  show(location.hash.slice(1));
})();
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{{ csp }}">
<title>{{ title }}</title>
<style>{{ style }}</style>
</head>
<body>
<header>
<h1 id="title">{{ title }}</h1>
<p class="note">{{ board_kind }}: ranked by the <strong>{{ split }}</strong> {{ score_name }} ({{ metric }}, on the
{{ split }} split; {{ better }} is better). How ties and flagged entries are handled is explained
<a href="#ranking-rules">below</a>.</p>
</header>
<figure id="distribution">
<img src="{{ distribution }}" alt="Distribution of {{ split }} {{ score_name }}s per board">
<figcaption>{{ split|capitalize }} {{ score_name }}s of all entries per board
({{ "log scale; " if better == "lower" else "" }}crosses are entries flagged by the retraining check).</figcaption>
</figure>
<nav class="tabs" aria-label="Boards">
{%- for board in boards %}
<a href="#{{ board.id }}" data-track="{{ board.track }}">{{ board.track }} ({{ board.rows|length }})</a>
{%- endfor %}
</nav>
{% for board in boards %}
<section class="board-section" id="{{ board.id }}" data-track="{{ board.track }}">
<h2>{{ board.track }}</h2>
<p class="note">{{ board.description }}</p>
{%- if board.rows %}
<table class="board" data-track="{{ board.track }}">
<thead><tr><th>rank</th><th>name</th><th>{{ detail_label }}</th>
{%- for column in cost_columns %}<th>{{ column }}</th>{% endfor -%}
<th>retraining check</th><th>retrained {{ score_name }}</th><th>submitted</th></tr></thead>
<tbody>
{%- for row in board.rows %}
<tr class="entry {{ row.css }}" data-rank="{{ row.rank }}" data-status="{{ row.status }}">
<td class="rank">{{ row.rank_text }}</td><td class="name">{{ row.name }}</td><td class="num">{{ row.detail }}</td>
{%- for cost in row.costs %}<td class="num cost">{{ cost }}</td>{% endfor -%}
<td class="retrain"><span class="badge {{ row.retrain }}">{{ row.retrain_text }}</span></td>
<td class="num">{{ row.retrained }}</td><td>{{ row.submitted }}</td></tr>
{%- endfor %}
</tbody>
</table>
{%- else %}
<p class="empty">No entries yet.</p>
{%- endif %}
{%- if board.pictures %}
<figure class="pictures">
<img src="{{ board.pictures }}" alt="Top entries of {{ board.track }}: {{ picture_caption }}">
<figcaption>First row: public test examples. Next rows: {{ picture_caption }}.</figcaption>
</figure>
{%- endif %}
</section>
{% endfor %}
<footer id="ranking-rules">
<h2>How the boards are ranked</h2>
<p class="note">{{ tie_break }}</p>
</footer>
<script>{{ script }}</script>
</body>
</html>
"""


def data_uri(png: bytes) -> str:
    """Inline a PNG so the page needs no other file."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode("ascii") + "'"


CSP = (
    f"default-src 'none'; img-src data:; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
    "base-uri 'none'; form-action 'none'"
)

_ENVIRONMENT = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(
    *,
    title: str,
    metric: str,
    detail_label: str,
    picture_caption: str,
    final: bool,
    tie_break: str,
    better: str = "lower",
    score_name: str = "cost",
    distribution: str,
    cost_columns: Sequence[str],
    boards: Sequence[Mapping[str, Any]],
) -> str:
    """The page's HTML; every string argument is escaped except the fixed CSS and script."""
    return _ENVIRONMENT.from_string(TEMPLATE).render(
        title=title,
        metric=metric,
        detail_label=detail_label,
        picture_caption=picture_caption,
        board_kind="Final board" if final else "Public board (the final ranking uses a hidden private split)",
        split="private" if final else "public",
        tie_break=tie_break,
        better=better,
        score_name=score_name,
        distribution=distribution,
        cost_columns=list(cost_columns),
        boards=boards,
        csp=CSP,
        style=Markup(STYLE),
        script=Markup(SCRIPT),
    )
