"""Process isolation for untrusted student code.

A :class:`Sandbox` turns a command into one that runs inside bubblewrap: its own user, PID, network,
IPC and UTS namespaces (no network at all), a read-only view of the software environment, a private
work directory (a size-limited tmpfs, filled with a copy of the submission at start) and a private
``/tmp``, and nothing else of the host: no course directory, no gradebook, no home directory, and an
empty environment (``env -i`` runs before bubblewrap, whose own process is PID 1 inside and would
otherwise show the grader's environment in ``/proc/1/environ``).  Nothing the student writes reaches
the host's disk.

Resource bounds come in two layers.  ``prlimit`` sets per-process rlimits (address space, file size,
open files, no core dumps) everywhere.  Where the host lets us create cgroups (v2, or v1 with the
``memory`` and ``pids`` controllers), each sandbox also gets its own cgroup, which bounds the memory of
all its processes together (tmpfs pages included) and their number: that is what stops a fork bomb.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

SANDBOX_HOME = "/home/student"
SANDBOX_WORKDIR = "/home/student/work"
SANDBOX_SUBMISSION = "/submission"  # read-only; copied into SANDBOX_WORKDIR when the sandbox starts
SANDBOX_MPLCONFIGDIR = "/tmp/matplotlib"

# Only what a Python kernel needs to start; /etc as a whole would show the host's configuration.
_ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/fonts",
    "/etc/matplotlibrc",
    "/etc/alternatives",
    "/etc/ssl/certs",
)
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# When the grader runs as root, student code runs as this unprivileged host user ("nobody"), so nothing
# it creates in the kernel (files, keys) belongs to root on the host.
HOST_USER = 65534
# Joins a fresh, anonymous session keyring (keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)), then runs argv: keys
# the student's code creates die with the sandbox instead of landing in a keyring that outlives it.
_KEYCTL = {"x86_64": 250, "aarch64": 219}
_FRESH_KEYRING = (
    "import ctypes, os, sys\n"
    "ctypes.CDLL(None, use_errno=True).syscall({nr}, 1, None)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


class SandboxUnavailable(RuntimeError):
    """No sandbox can be made on this machine, and the instructor has not opted out."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource bounds for one student's kernel and everything it starts."""

    memory_bytes: int = 4 * 2**30
    address_space_bytes: int = 16 * 2**30
    max_processes: int = 64
    max_file_bytes: int = 256 * 2**20
    max_open_files: int = 1024
    disk_bytes: int = 512 * 2**20  # the work directory; /tmp gets a quarter of this
    threads: int = 0  # BLAS/OpenMP/torch threads of the kernel (0: the libraries' own choice, one per core)


# What numpy's BLAS, torch and OpenMP read for their thread counts: set where several sandboxes share the cores.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


# The parts of the ``mlphys`` package a student's kernel may see: the course library and the code that
# runs in the kernel.  The grader's parts (engine, assignments' hidden halves, demo cases, CLI) are not
# mounted, wherever the package is installed.
STUDENT_VISIBLE = ("__init__.py", "course", "kernel")


def _readonly_roots() -> list[str]:
    """Directories holding the Python installation the kernel runs from: venv, base install and site
    directories.  Never the directory grading runs in (the course root), nor any directory above it."""
    import site

    candidates = {sys.prefix, sys.base_prefix, str(Path(sys.executable).parent)}
    candidates.update(site.getsitepackages())
    course_root = os.path.realpath(os.getcwd())
    roots = set()
    for candidate in candidates:
        real = os.path.realpath(candidate)
        if not os.path.isdir(real) or real == "/":
            continue
        if course_root == real or course_root.startswith(real + "/"):
            continue  # binding this would show the course directory to the student
        roots.add(real)
    kept: list[str] = []
    for root in sorted(roots, key=len):
        if any(root == k or root.startswith(k + "/") for k in kept):
            continue
        if any(root == d or root.startswith(d + "/") for d in _SYSTEM_DIRS):
            continue
        kept.append(root)
    return kept


def _package_binds(parents: Callable[[str], list[str]]) -> list[str]:
    """bwrap arguments that show only the student-visible parts of ``mlphys``.

    An empty tmpfs covers the package directory (an installed copy in site-packages, or the source tree
    of an editable install), and the visible parts are bound back on top of it, read-only.
    """
    import mlphys

    package = Path(mlphys.__file__).resolve().parent
    args = [*parents(str(package)), "--perms", "0755", "--tmpfs", str(package)]
    for part in STUDENT_VISIBLE:
        if (package / part).exists():
            args += ["--ro-bind", str(package / part), str(package / part)]
    return args


class CGroup:
    """A cgroup (v2 or v1) bounding memory and process count of one sandbox, when the host allows."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    @classmethod
    def create(cls, limits: Limits) -> CGroup | None:
        name = f"mlphys-{uuid.uuid4().hex[:12]}"
        v2 = Path("/sys/fs/cgroup")
        if (v2 / "cgroup.controllers").exists():
            return cls._create_v2(v2, name, limits)
        return cls._create_v1(name, limits)

    @classmethod
    def _create_v2(cls, root: Path, name: str, limits: Limits) -> CGroup | None:
        own = Path("/proc/self/cgroup").read_text().strip().split("\n")[-1].split("::", 1)[-1]
        base = root / own.lstrip("/")
        try:
            controllers = (base / "cgroup.subtree_control").read_text().split()
            if not {"memory", "pids"} <= set(controllers):
                return None
            path = base / name
            path.mkdir()
            (path / "memory.max").write_text(str(limits.memory_bytes))
            (path / "memory.swap.max").write_text("0") if (path / "memory.swap.max").exists() else None
            (path / "pids.max").write_text(str(limits.max_processes))
        except OSError:
            return None
        return cls([path])

    @classmethod
    def _create_v1(cls, name: str, limits: Limits) -> CGroup | None:
        mem, pids = Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup/pids")
        made: list[Path] = []
        try:
            for root, settings in (
                (mem, {"memory.limit_in_bytes": limits.memory_bytes}),
                (pids, {"pids.max": limits.max_processes}),
            ):
                path = root / name
                path.mkdir()
                made.append(path)
                for key, value in settings.items():
                    (path / key).write_text(str(value))
            memsw = mem / name / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                memsw.write_text(str(limits.memory_bytes))
        except OSError:
            cls(made).destroy()
            return None
        return cls(made)

    def join_command(self) -> list[str]:
        """A shell prefix that moves itself into this cgroup and then execs the rest of argv."""
        writes = " && ".join(f"echo $$ > {p / 'cgroup.procs'}" for p in self.paths)
        return ["/bin/sh", "-c", f'{writes} && exec "$@"', "mlphys-sandbox"]

    def kill(self) -> None:
        for path in self.paths:
            kill_file = path / "cgroup.kill"
            if kill_file.exists():
                try:
                    kill_file.write_text("1")
                    continue
                except OSError:
                    pass
            try:
                pids = (path / "cgroup.procs").read_text().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass

    def oom_killed(self) -> bool:
        """Whether the kernel OOM-killed a process of this cgroup (v2 ``memory.events``, v1 ``memory.oom_control``)."""
        for path in self.paths:
            for name in ("memory.events", "memory.oom_control"):
                try:
                    lines = (path / name).read_text().splitlines()
                except OSError:
                    continue
                for line in lines:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                        return True
        return False

    def destroy(self) -> None:
        self.kill()
        for path in self.paths:
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    import time

                    time.sleep(0.02)


@dataclasses.dataclass
class Sandbox:
    """One student's jail.

    ``submission`` (host) holds the files the student's code starts with; ``rundir`` (host) is shared
    read-write with the grader for the kernel's connection file and sockets.
    """

    submission: Path
    rundir: Path
    limits: Limits = dataclasses.field(default_factory=Limits)
    use_bwrap: bool = True
    cgroup: CGroup | None = None
    gpu: bool = False  # hand the host's GPU devices to the sandbox (c.SandboxedExecute.gpu)
    # Variables set for the command besides the sandbox's own (a warm kernel's MLPHYS_PRELOAD): the grader's
    # settings, never the grader's environment, which the sandbox otherwise keeps from the student.
    environment: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def host_uid(self) -> int | None:
        """The unprivileged host user student code runs as, where the grader is root; else None (then the
        sandbox's user namespace maps it to the grader's own, unprivileged, user)."""
        return HOST_USER if self.use_bwrap and os.geteuid() == 0 else None

    def give_to_student(self, path: Path) -> None:
        """Let the student's processes write ``path`` (the run directory, the kernel's connection file)."""
        if self.host_uid is not None:
            os.chown(path, self.host_uid, self.host_uid)

    def wrap(self, argv: list[str]) -> list[str]:
        """Return ``argv`` wrapped so that it runs inside this sandbox."""
        lim = self.limits
        prefix: list[str] = []
        if self.cgroup is not None:
            prefix += self.cgroup.join_command()
        prefix += ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin"] if self.use_bwrap else []
        prefix += [
            "prlimit",
            f"--as={lim.address_space_bytes}",
            f"--fsize={lim.max_file_bytes}",
            f"--nofile={lim.max_open_files}",
            "--core=0",
            "--",
        ]
        if not self.use_bwrap:
            extra = [f"{name}={value}" for name, value in self.environment.items()]
            return prefix + (["env", *extra] if extra else []) + argv
        fill_workdir = f'cp -R {SANDBOX_SUBMISSION}/. {SANDBOX_WORKDIR}/ 2>/dev/null; exec "$@"'
        inside = ["/bin/sh", "-c", fill_workdir, "sandbox", *argv]
        machine = os.uname().machine
        if machine in _KEYCTL:
            inside = [sys.executable, "-c", _FRESH_KEYRING.format(nr=_KEYCTL[machine]), *inside]
        if self.host_uid is not None:
            uid = str(self.host_uid)
            inside = [
                "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", "--no-new-privs", "--", *inside,
            ]  # fmt: skip
        return [*prefix, *self._bwrap_args(), "--", *inside]

    def _bwrap_args(self) -> list[str]:
        if self.host_uid is not None:
            # No user namespace: the kernel is the real, unprivileged host user HOST_USER (setpriv, right
            # after bwrap, switches to it and drops every capability for good).
            args = ["bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        else:
            args = ["bwrap", "--unshare-all"]
        args += ["--die-with-parent", "--new-session", "--hostname", "sandbox", "--proc", "/proc", "--dev", "/dev"]
        made: set[str] = {"/"}

        def parents(path: str) -> list[str]:
            """bwrap makes missing parents of a mount point private (0700): make them 0755 first."""
            out: list[str] = []
            for parent in reversed(Path(path).parents):
                if str(parent) not in made:
                    made.add(str(parent))
                    out += ["--perms", "0755", "--dir", str(parent)]
            return out

        def tmpfs(path: str, size: int) -> list[str]:
            made.add(path)
            return [*parents(path), "--perms", "1777", "--size", str(size), "--tmpfs", path]

        def bind(kind: str, source: str, dest: str) -> list[str]:
            made.add(dest)
            return [*parents(dest), kind, source, dest]

        args += tmpfs("/tmp", self.limits.disk_bytes // 4)
        font_list = matplotlib_font_list()
        if font_list is not None:
            made.add(SANDBOX_MPLCONFIGDIR)
            args += ["--perms", "1777", "--dir", SANDBOX_MPLCONFIGDIR]
            args += bind("--ro-bind", font_list, f"{SANDBOX_MPLCONFIGDIR}/{Path(font_list).name}")
        args += ["--perms", "1777", "--dir", "/var/tmp"]
        args += tmpfs("/home", 16 * 2**20)
        args += ["--perms", "1777", "--dir", SANDBOX_HOME]
        args += tmpfs(SANDBOX_WORKDIR, self.limits.disk_bytes)
        for d in _SYSTEM_DIRS:
            if os.path.islink(d):
                args += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                args += bind("--ro-bind", d, d)
        for f in _ETC_FILES:
            if os.path.exists(f):
                args += bind("--ro-bind", f, f)
        for root in _readonly_roots():
            args += bind("--ro-bind", root, root)
        args += _package_binds(parents)
        if self.gpu:
            for device in gpu_devices():
                args += bind("--dev-bind", device, device)
        args += bind("--ro-bind", str(self.submission), SANDBOX_SUBMISSION)
        args += bind("--bind", str(self.rundir), str(self.rundir))
        args += [
            "--chdir",
            SANDBOX_WORKDIR,
            "--clearenv",
            "--setenv",
            "HOME",
            SANDBOX_HOME,
            "--setenv",
            "PATH",
            f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "--setenv",
            "MPLCONFIGDIR",
            SANDBOX_MPLCONFIGDIR,
            "--setenv",
            "PYTHONDONTWRITEBYTECODE",
            "1",
            "--setenv",
            "LANG",
            "C.UTF-8",
        ]
        for variable in THREAD_VARIABLES if self.limits.threads > 0 else ():
            args += ["--setenv", variable, str(self.limits.threads)]
        for name, value in self.environment.items():
            args += ["--setenv", name, value]
        if self.host_uid is not None:
            # Only what setpriv needs to become HOST_USER; it drops these too.
            args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
            args += ["--cap-add", "CAP_SETPCAP"]
        else:
            args += ["--uid", "1000", "--gid", "1000"]
        return args

    def run(self, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a short command to completion inside the sandbox (used for self-checks)."""
        return subprocess.run(
            self.wrap(argv), capture_output=True, text=True, timeout=timeout, env={"PATH": os.environ.get("PATH", "")}
        )


@functools.cache
def matplotlib_font_list() -> str | None:
    """The host's matplotlib font list (built on the host the first time matplotlib looks for a font), which
    every sandbox shows its kernel, read-only: otherwise each kernel's fresh configuration directory makes
    matplotlib scan the system's fonts again (about 0.12 s of CPU and two ``fc-list`` runs per student).
    None where matplotlib is not installed."""
    try:
        import matplotlib
        from matplotlib import font_manager  # reads the font list, or builds and saves it
    except ImportError:
        return None
    path = Path(matplotlib.get_cachedir(), f"fontlist-v{font_manager.FontManager.__version__}.json")
    return str(path) if path.is_file() else None


def gpu_devices() -> list[str]:
    """The device files through which CUDA reaches the host's NVIDIA GPUs (none on a machine without one)."""
    import glob

    return sorted(glob.glob("/dev/nvidia*")) + sorted(glob.glob("/dev/nvidia-caps/*"))


def _probe_command() -> list[str]:
    """The namespaces, mounts and user switch every sandbox makes: a container may allow some of them and
    refuse others, so the probe makes them all (on an empty command)."""
    box = Sandbox(Path("/"), Path("/tmp"), use_bwrap=True)
    base = ["--die-with-parent", "--hostname", "sandbox", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    if box.host_uid is None:
        return ["bwrap", "--unshare-all", *base, "--", "/bin/true"]
    uid = str(box.host_uid)
    return [
        "bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", *base,
        "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP",
        "--", "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
        "--bounding-set=-all", "--no-new-privs", "--", "/bin/true",
    ]  # fmt: skip


def bwrap_available() -> str | None:
    """Return None if bubblewrap can make a sandbox here, else the reason it cannot."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed; on Debian/Ubuntu: apt-get install bubblewrap"
    if shutil.which("prlimit") is None:
        return "prlimit (util-linux) is not installed"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed; as root, the sandbox needs it to run student code as nobody"
    try:
        probe = subprocess.run(
            _probe_command(),
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap failed to start: {exc}"
    if probe.returncode != 0:
        reason = f"bubblewrap cannot create namespaces here: {probe.stderr.strip()}"
        if os.path.exists("/run/.containerenv") or os.path.exists("/.dockerenv"):
            reason += (
                " (inside a container: run it with --privileged, which also gives each sandbox its cgroup, or at"
                " least --security-opt seccomp=unconfined --security-opt unmask=ALL --cap-add SYS_ADMIN;"
                " see docker/README.md)"
            )
        return reason
    return None
