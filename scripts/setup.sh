#!/usr/bin/env bash
# Set up a fresh clone: bubblewrap (the sandbox), a virtual environment with the course package.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bwrap >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null
    else
        echo "bubblewrap is missing: install it (Debian/Ubuntu: sudo apt-get install bubblewrap)." >&2
        echo "Without it the grader refuses to run student code." >&2
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
# (The GPU Docker image pins its own CUDA build.)
.venv/bin/pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"
