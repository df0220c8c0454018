#!/usr/bin/env bash
# Build the grader and student images and test them for real, with podman or docker:
#   1. grade the demo cohort of 01_xor_nets inside the grader container with plain `nbgrader autograde`
#      and check that every score equals the score of the same cohort graded on the host (in parallel);
#   2. check that, without the sandbox's run flags, the grader refuses student code and names the flags;
#   3. start the student image and check from the host that JupyterLab answers, that nbgrader's
#      assignment list shows the released assignment and fetches it, and that the grader's code is
#      not importable there.
# Usage (repository root, after `bash scripts/setup.sh`, as root for podman):  bash docker/test.sh
# Settings (environment):
#   ENGINE        podman or docker (default: whichever is installed, podman first)
#   BASE          base image (default: the Dockerfile's public one); BASE=local builds a Debian bookworm
#                 base with debootstrap (docker/make-base.sh), for hosts that reach no container registry
#   TORCH_WHEELS  a folder holding the CPU build of torch 2.13.0 and its dependencies (pip download
#                 torch==2.13.0+cpu -d DIR), used instead of download.pytorch.org (podman only: docker
#                 build cannot mount folders)
#   PIP_CA        a CA bundle for pip inside the build (a TLS-intercepting proxy); podman only
#   KINDS         which cases of the cohort to grade, comma-separated (default: all four kinds,
#                 reference,blank,mistake,attack; docker/ci.sh grades the honest ones)
#   KEEP=1        keep the work folder (course directories, logs) after the test
set -euo pipefail
cd "$(dirname "$0")/.."
{  # read to the end before running: an edit of this file while it runs changes nothing
ASSIGNMENT=01_xor_nets
COURSE_ID=ml4physics
KINDS="${KINDS:-reference,blank,mistake,attack}"
engine="${ENGINE:-$(basename "$(command -v podman || command -v docker || echo none)")}"
[ "$engine" != none ] || { echo "neither podman nor docker is installed" >&2; exit 2; }
[ -x .venv/bin/mlphys ] || { echo "run bash scripts/setup.sh first (the host grading uses .venv)" >&2; exit 2; }
work="$(mktemp -d /var/tmp/mlphys-docker-test.XXXXXX)"
student_name="mlphys-test-$$"
host_pid=
cleanup() {
    "$engine" rm -f "$student_name" "$student_name-grader" >/dev/null 2>&1 || true
    [ -z "$host_pid" ] || kill -- "-$host_pid" 2>/dev/null || true  # its process group: nbgrader too
    if [ "${KEEP:-0}" = 1 ]; then echo "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
log() { printf '[%4ds] %s\n' "$SECONDS" "$*"; }
fail() { printf '[%4ds] FAIL: %s\n' "$SECONDS" "$*" >&2; exit 1; }

# --- the host's grading of the same cohort, started first: it runs while the images build ----------------
mkdir -p "$work/host"
cp -r nbgrader_config.py source "$work/host/"
log "host: mlphys demo $ASSIGNMENT (in the background)"
setsid .venv/bin/mlphys demo "$ASSIGNMENT" --full --root "$work/host" --kinds "$KINDS" >"$work/host.log" 2>&1 &
host_pid=$!

# --- run flags ------------------------------------------------------------------------------------------
# Some hosts refuse the engine's default rlimits (podman asks for 1M open files), and podman starts its
# runtime with at most 32768 processes: ask for what this process may have, within that.
nofile="$(ulimit -Hn)"; nproc="$(ulimit -Hu)"
[ "$nofile" != unlimited ] && [ "$nofile" -le 1048576 ] || nofile=1048576
[ "$nproc" != unlimited ] && [ "$nproc" -le 32768 ] || nproc=32768
run_flags=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
# What the sandbox needs inside a container (docker/README.md says why): bubblewrap's namespaces, and
# writable cgroups for each student's memory and process bound (without them a fork bomb starves the
# whole container, and the grading of every later student fails).
sandbox_flags=(--privileged)

# --- build ----------------------------------------------------------------------------------------------
build_args=(-f docker/Dockerfile "${run_flags[@]}")
[ "$engine" = podman ] && build_args+=(--format docker)  # keeps SHELL (pipefail) in the image config
if [ "${BASE:-}" = local ]; then
    log "base: debootstrap Debian bookworm into a local image"
    BASE="$(ENGINE="$engine" bash docker/make-base.sh localhost/mlphys-base:bookworm 2>"$work/base.log" | tail -1)" \
        || { cat "$work/base.log" >&2; fail "could not build the local base image"; }
fi
[ -z "${BASE:-}" ] || build_args+=(--build-arg "BASE=$BASE")
if [ -n "${TORCH_WHEELS:-}" ]; then
    build_args+=(--volume "$(realpath "$TORCH_WHEELS"):/wheels:ro" --build-arg TORCH_INDEX_URL=
        --build-arg TORCH_FIND_LINKS=/wheels)
fi
if [ -n "${PIP_CA:-}" ]; then
    build_args+=(--volume "$(realpath "$PIP_CA"):/run/pip-ca.crt:ro" --build-arg PIP_CERT=/run/pip-ca.crt)
fi
build() {  # build TARGET: the image localhost/mlphys-TARGET:test
    log "build: $1"
    "$engine" build "${build_args[@]}" --target "$1" -t "localhost/mlphys-$1:test" . >"$work/build-$1.log" 2>&1 \
        || { tail -40 "$work/build-$1.log" >&2; fail "build of $1"; }
    log "build: localhost/mlphys-$1:test, $("$engine" image inspect --format '{{.Size}}' "localhost/mlphys-$1:test" \
        | awk '{printf "%.2f GB", $1 / 1e9}')"
}
build grader

# --- the instructor's workflow in the grader container ----------------------------------------------------
course="$work/course"; exchange="$work/exchange"
mkdir -p "$course" "$exchange"
cp -r nbgrader_config.py source "$course/"
grader() {  # grader [extra run flags...] -- command...
    local extra=()
    while [ "$1" != -- ]; do extra+=("$1"); shift; done
    shift
    "$engine" run --rm "${run_flags[@]}" "${extra[@]}" -v "$course:/course" -v "$exchange:/srv/nbgrader/exchange" \
        localhost/mlphys-grader:test "$@"
}
log "grader: generate_assignment, release_assignment, write the demo cohort"
grader -- nbgrader generate_assignment "$ASSIGNMENT" --force >"$work/generate.log" 2>&1 \
    || { cat "$work/generate.log" >&2; fail "generate_assignment"; }
grader -- nbgrader release_assignment "$ASSIGNMENT" --Exchange.root=/srv/nbgrader/exchange --force \
    >"$work/release.log" 2>&1 || { cat "$work/release.log" >&2; fail "release_assignment"; }
grader -- python -c "
from pathlib import Path
from mlphys.demo.cohort import cohort, write_cohort
cases = [c for c in cohort(Path('/course'), '$ASSIGNMENT') if c.kind in '$KINDS'.split(',')]
write_cohort(Path('/course'), cases)
print(len(cases))" >"$work/cohort.log" 2>&1 || { cat "$work/cohort.log" >&2; fail "writing the cohort"; }
log "grader: $(tail -1 "$work/cohort.log") submissions written"

# Without the flags the sandbox cannot be made: autograde must refuse to run student code, and say why.
first_student="$(find "$course/submitted" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort | head -1)"
grader -- nbgrader autograde "$ASSIGNMENT" --student "$first_student" --force >"$work/refused.log" 2>&1 || true
grep -q "Refusing to run student code" "$work/refused.log" \
    || { cat "$work/refused.log" >&2; fail "autograde without the sandbox flags did not refuse"; }
grep -q -- "--security-opt seccomp=unconfined" "$work/refused.log" \
    || { cat "$work/refused.log" >&2; fail "the refusal does not name the run flags"; }
[ ! -e "$course/autograded/$first_student/$ASSIGNMENT" ] || fail "a refused submission was graded anyway"
log "grader: without the flags, autograde refuses student code and names the flags"

# --- the student image, checked while the grader container grades -----------------------------------------
student_check() {
    local port token base
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    token="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    base="http://127.0.0.1:$port"
    "$engine" run -d --name "$student_name" "${run_flags[@]}" -p "127.0.0.1:$port:8888" -e JUPYTER_TOKEN="$token" \
        -v "$exchange:/srv/nbgrader/exchange" localhost/mlphys-student:test >/dev/null
    python3 - "$base" "$token" "$ASSIGNMENT" "$COURSE_ID" <<'EOF' || return 1
import json, sys, time, urllib.error, urllib.request

base, token, assignment, course_id = sys.argv[1:]
headers = {"Authorization": f"token {token}"}

def call(path, method="GET"):
    req = urllib.request.Request(base + path, method=method, headers=headers, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read().decode()

for _ in range(120):
    try:
        status, _ = call("/api/status")
        break
    except (urllib.error.URLError, ConnectionError, OSError):
        time.sleep(1)
else:
    sys.exit("JupyterLab did not answer on " + base)
status, page = call("/lab")
assert status == 200 and "JupyterLab" in page, "no JupyterLab page at /lab"
_, listed = call(f"/assignments?course_id={course_id}")
listed = json.loads(listed)
assert listed.get("success"), listed
released = [a for a in listed["value"] if a["assignment_id"] == assignment and a["status"] == "released"]
assert released, f"{assignment} is not listed as released: {listed}"
_, fetched = call(f"/assignments/fetch?course_id={course_id}&assignment_id={assignment}", method="POST")
_, contents = call(f"/api/contents/{assignment}")
names = [item["name"] for item in json.loads(contents)["content"]]
assert any(n.endswith(".ipynb") for n in names), f"fetched {assignment} holds no notebook: {names}"
# The student's own deadlines beside nbgrader's list: the server extension answers (no variant file here, so
# no deadline), and JupyterLab loads the labextension that shows them.
_, deadlines = call(f"/mlphys/deadlines?course_id={course_id}")
assert json.loads(deadlines) == {}, f"/mlphys/deadlines answered {deadlines}"
assert '"mlphys-deadlines"' in page, "JupyterLab's page does not load the mlphys-deadlines labextension"
# The grader's pages are not served to students.
try:
    status, _ = call("/formgrader")
except urllib.error.HTTPError as err:
    status = err.code
assert status == 404, f"/formgrader answered {status}"
print(f"JupyterLab answers; {assignment} listed as released and fetched ({', '.join(names)}); no formgrader")
EOF
    # Inside: the course library imports, the grader's code does not exist, and nobody is root.
    "$engine" exec "$student_name" python -c "
import importlib, os
import mlphys.course.plotting, mlphys.course.circles, mlphys.course.autoencoder
for name in ('mlphys.grading', 'mlphys.demo', 'mlphys.leaderboard', 'mlphys.cli'):
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        continue
    raise SystemExit(name + ' is importable in the student image')
assert os.getuid() != 0, 'the student image runs as root'
print('mlphys.course imports; mlphys.grading, .demo, .leaderboard, .cli do not; uid', os.getuid())"
}

log "grader: nbgrader autograde $ASSIGNMENT with the sandbox flags (in the background)"
grade() {
    # As in `mlphys demo`, a per-student problem makes nbgrader exit non-zero after grading everyone else.
    grader "${sandbox_flags[@]}" --name "$student_name-grader" -- nbgrader autograde "$ASSIGNMENT" --force >"$work/autograde.log" 2>&1 || true
    grader "${sandbox_flags[@]}" -- nbgrader generate_feedback "$ASSIGNMENT" --force >"$work/feedback.log" 2>&1 || true
    grader -- nbgrader export >"$work/export.log" 2>&1
}
grade &
grade_pid=$!

# The student image shares the Python environment's layers with the grader: built while the grader grades.
build student
log "student: JupyterLab, the assignment list and the trust split"
if student_check >"$work/student.log" 2>&1; then
    sed 's/^/          /' "$work/student.log"
else
    cat "$work/student.log" >&2
    "$engine" logs "$student_name" 2>&1 | tail -30 >&2
    fail "student image"
fi
"$engine" rm -f "$student_name" >/dev/null

wait "$grade_pid" || { cat "$work/export.log" >&2; fail "nbgrader export in the grader container"; }
log "grader: graded, $(($(wc -l <"$course/grades.csv") - 1)) rows in grades.csv"
! grep -q "No cgroup available" "$work/autograde.log" || fail "the sandboxes had no cgroup in the grader container"

log "host: waiting for its grading"
wait "$host_pid" || { tail -40 "$work/host.log" >&2; fail "the host's grading (mlphys demo)"; }
host_pid=
python3 - "$work/host/grades.csv" "$course/grades.csv" "$ASSIGNMENT" <<'EOF'
import csv, sys

def scores(path):
    with open(path, newline="") as handle:
        return {r["student_id"]: float(r["score"]) for r in csv.DictReader(handle) if r["assignment"] == sys.argv[3]}

host, container = scores(sys.argv[1]), scores(sys.argv[2])
if not host:
    sys.exit("the host graded nobody")
differ = {s: (host.get(s), container.get(s)) for s in host.keys() | container.keys() if host.get(s) != container.get(s)}
for student, (h, c) in sorted(differ.items()):
    print(f"  {student:34} host {h}  container {c}")
if differ:
    sys.exit(f"{len(differ)} of {len(host)} scores differ between the host and the container")
print(f"all {len(host)} scores equal on the host and in the container ({sum(host.values()):g} points in all)")
EOF
log "PASS"
exit
}
