#!/usr/bin/env bash
# Set up a fresh clone: bubblewrap (the sandbox), PostgreSQL (the tests' PostgreSQL gradebook), a virtual
# environment with the course package.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: bubblewrap (the sandbox), Debian's PostgreSQL server (the tests start throwaway servers of
# their own on loopback from its binaries, as an unprivileged user; they never use the package's own cluster
# or service), and Debian's chromium with its driver (the leaderboard page's browser test, which is skipped
# without them). Whatever is missing is installed in one apt-get call.
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
command -v npm >/dev/null 2>&1 || missing+=(npm)  # JupyterHub's proxy, for the exam-on-JupyterHub test
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
        # Chromium and npm are optional (not every distribution packages them); the sandbox and PostgreSQL are not.
        echo "could not install ${missing[*]}; the browser and JupyterHub tests may be skipped." >&2
        required=()
        command -v bwrap >/dev/null 2>&1 || required+=(bubblewrap)
        compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || required+=(postgresql)
        if [ ${#required[@]} -gt 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${required[@]}" >/dev/null
        fi
    fi
fi
if ! command -v bwrap >/dev/null 2>&1; then
    echo "bubblewrap is missing: install it (Debian/Ubuntu: sudo apt-get install bubblewrap)." >&2
    echo "Without it the grader refuses to run student code." >&2
fi
if ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "PostgreSQL is missing: install it (Debian/Ubuntu: sudo apt-get install postgresql)." >&2
    echo "The tests of the PostgreSQL gradebook fail without it; grading itself needs it only with a postgresql db_url." >&2
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
# (The GPU Docker image pins its own CUDA build.)
.venv/bin/pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"
# Students' deadlines in JupyterLab's Assignments list: the prebuilt labextension (built from labextension/) and
# the server extension that serves them. A regular install lays both down from pyproject's data-files; an editable
# install skips data files (setuptools issue 3399), so the same two are put in place here (no node build needed).
rm -rf .venv/share/jupyter/labextensions/mlphys-deadlines
mkdir -p .venv/share/jupyter/labextensions .venv/etc/jupyter/jupyter_server_config.d
ln -s "$(pwd)/src/mlphys/course/labextension" .venv/share/jupyter/labextensions/mlphys-deadlines
cp src/mlphys/course/jupyter-config/mlphys-deadlines.json .venv/etc/jupyter/jupyter_server_config.d/

# JupyterHub's proxy (configurable-http-proxy, Node.js) for the exam-on-JupyterHub test
# (grader_tests/test_jupyterhub_exam.py), into the virtual environment (.venv/node_modules/.bin), where the test
# looks for it. Without npm the setup goes on and that test is skipped.
if command -v npm >/dev/null 2>&1; then
    npm install --prefix .venv --no-fund --no-audit --loglevel=error "configurable-http-proxy@5" >/dev/null ||
        echo "could not install configurable-http-proxy; the JupyterHub exam test will be skipped." >&2
else
    echo "npm is missing: the JupyterHub exam test will be skipped (Debian/Ubuntu: sudo apt-get install npm)." >&2
fi

# MNIST for 06_boltzmann_mnist: offline, the shared test digits beside the clone (../shared/data/mnist, as in CI);
# else the full set, downloaded once into ~/.cache/mlphys/mnist with its published checksums. Says which.
.venv/bin/python -m mlphys.course.mnist "$(pwd)/../shared/data/mnist" || true
