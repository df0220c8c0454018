#!/usr/bin/env bash
# Set up a fresh clone: bubblewrap (the sandbox), a virtual environment with the course package.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: bubblewrap (the sandbox), and Debian's chromium with its driver (the leaderboard page's
# browser test, which is skipped without them). Whatever is missing is installed in one apt-get call.
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
        # Chromium is optional (not every distribution packages it); the sandbox is not.
        echo "could not install ${missing[*]}; the leaderboard browser test will be skipped." >&2
        if ! command -v bwrap >/dev/null 2>&1; then
            apt-get install -y -qq bubblewrap >/dev/null
        fi
    fi
fi
if ! command -v bwrap >/dev/null 2>&1; then
    echo "bubblewrap is missing: install it (Debian/Ubuntu: sudo apt-get install bubblewrap)." >&2
    echo "Without it the grader refuses to run student code." >&2
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
# (The GPU Docker image pins its own CUDA build.)
.venv/bin/pip install -q --disable-pip-version-check "torch==2.13.0"
.venv/bin/pip install -q --disable-pip-version-check -e ".[dev]"
