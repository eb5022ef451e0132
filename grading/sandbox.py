"""Run untrusted Python in a separate, limited process and get back only its bytes.

The grader never runs a learner's code in its own process. It hands `run_sandboxed` the code
to run and a payload for the child's stdin; the child prints its answer on stdout; the parent
gets a `SandboxResult` (exit status, capped stdout, capped stderr, what stopped it) and parses
plain data out of stdout itself (`read_json_result`). Nothing the child does to its own
interpreter (monkeypatching, objects with lying `__eq__`, `os._exit(0)`) reaches the parent:

    result = run_sandboxed("import sys; print(sum(map(int, sys.stdin.read().split())))", "1 2 3")
    result.stdout  -> b'6\\n'        result.returncode -> 0        result.timed_out -> False

Two levels of isolation, and `result.isolation` says which one a run got:

- bubblewrap (`bwrap`, Debian package `bubblewrap`), when it is installed and works here: the
  child sees only /usr, the interpreter's prefixes, the paths the caller names in `readable`
  (read-only), a fresh /proc and /dev, and private tmpfs /tmp, /dev/shm and working directory
  (size capped); no network (a private network namespace with only a down loopback), its own
  pid namespace (when the sandbox ends, every process in it ends), a new session (no terminal
  injection). When the grader runs as root, the child runs as the unprivileged `Limits.uid`
  with no capabilities, which also makes the process limit (RLIMIT_NPROC) effective.
- rlimits only, otherwise (or with `use_bubblewrap=False`): the same resource limits, a
  temporary working directory and its own process group, which is killed at the end. As root,
  the child runs as `Limits.uid` too, so the process limit holds and every process of that uid
  is killed at the end, also one that left the group. The child can read whatever its user can
  read and can reach the network: fine for a learner checking their own work, not for grading
  strangers' submissions.

Resource limits in both modes (`Limits`): wall time (the parent kills the run), CPU time
(RLIMIT_CPU), address space (RLIMIT_AS), largest file written (RLIMIT_FSIZE), processes
(RLIMIT_NPROC, only effective for a non-root uid: see `Limits`), no core dumps, and output:
at most `max_output_bytes` of each stream is kept, the rest is read and thrown away.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import resource
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

GiB = 1024**3
MiB = 1024**2

# Where the child finds its code and working directory inside the bubblewrap sandbox.
_SANDBOX_ROOT = "/sandbox"
# System paths the interpreter may need besides /usr: the dynamic linker's cache and the files
# that name users and groups (getpass, pwd). Nothing else of /etc is shown.
_ETC_FILES = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/localtime",
)
# On merged-/usr systems these are symlinks into /usr; elsewhere, real directories.
_TOP_LEVEL_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use. The defaults suit one grading run of a course exercise.

    memory_bytes caps the address space (RLIMIT_AS), not resident memory: it counts every
    mapping, also reserved but untouched ones. `import torch` (2.13, CPU) peaks at 0.64 GiB of
    address space, and about 2 GiB once 16 intra-op threads have run a matmul (each thread
    reserves a stack and a malloc arena), so 4 GiB lets torch work and stops a runaway
    allocation (`bytearray(10 * 2**30)` fails with MemoryError). RLIMIT_AS rather than
    RLIMIT_DATA because RLIMIT_DATA does not count shared anonymous mappings
    (`mmap.mmap(-1, n)`), so it would let a child fill the machine's memory. (CUDA reserves
    tens of GiB of address space when it starts: a GPU grader would need RLIMIT_DATA instead.)

    max_processes (RLIMIT_NPROC) counts every process and thread of the child's uid on the
    machine and is not enforced for root. It holds when the grader runs as root with
    bubblewrap: the child then runs as `uid`. Sandboxes that run at the same time under one uid
    share this count, so by default (uid None) each run gets a uid of its own (`fresh_uid`), and
    every process still running as that uid when the run ends is killed.

    cpus and (again) memory_bytes and max_processes are also set on a cgroup of the run's own,
    where the grader runs as root and the machine has cgroup v1's cpu, memory and pids
    controllers writable (see `_Cgroups`): at most `cpus` cores' time, `memory_bytes` of
    resident memory, `max_processes` tasks, whatever the uid.

    max_output_bytes caps each of stdout and stderr; max_file_bytes caps any one file the child
    writes (RLIMIT_FSIZE: a bigger write fails with EFBIG); scratch_bytes caps each of the
    tmpfs /tmp, /dev/shm and working directory under bubblewrap (memory: 3 × 256 MiB at most).
    """

    wall_seconds: float = 30.0
    cpu_seconds: int = 30
    cpus: float = 1.0
    memory_bytes: int = 4 * GiB
    max_processes: int = 64
    max_output_bytes: int = 1 * MiB
    max_file_bytes: int = 64 * MiB
    scratch_bytes: int = 256 * MiB
    uid: int | None = None

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "cpu_seconds", "cpus", "memory_bytes", "max_processes", "max_output_bytes",
                     "max_file_bytes", "scratch_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)}")


def fresh_uid() -> int:
    """A uid for one sandboxed run as root: random, from a range no real user has (200,000 to
    299,999). The kernel's process limit counts all processes of a uid, so runs at the same
    time under one uid would share it, and a fork bomb in one could stop the next from starting."""
    return 200_000 + secrets.randbelow(100_000)


@dataclass(frozen=True)
class SandboxResult:
    """How a sandboxed run ended and what it printed.

    returncode is the child's exit status (as the shell reports it under bubblewrap: 128 + n for
    a child killed by signal n); killed_by_signal is n when a signal ended it (SIGKILL after a
    timeout, SIGXCPU at the CPU limit, SIGSEGV for a crash), else None. stdout is bytes (the
    caller parses it), stderr text; each holds at most `max_output_bytes`, and output_truncated
    says that more was printed and thrown away. stalled says the parent stopped the child because
    the next line it was waiting for (see run_sandboxed's `on_line`) did not come in time.
    """

    returncode: int
    stdout: bytes
    stderr: str
    timed_out: bool
    killed_by_signal: int | None
    output_truncated: bool
    isolation: str
    wall_seconds: float
    stalled: bool = False

    @property
    def ok(self) -> bool:
        """True when the child exited by itself with status 0 (which proves nothing about its output)."""
        return self.returncode == 0 and not self.timed_out and not self.stalled and self.killed_by_signal is None

    def describe(self) -> str:
        """One line saying how the run ended, in words a learner understands."""
        if self.stalled:
            return "was stopped: one step ran longer than its time limit (an infinite loop?)"
        if self.timed_out:
            return "was stopped: it ran longer than the time limit (an infinite loop?)"
        if self.killed_by_signal == signal.SIGXCPU:
            return "was stopped: it used more CPU time than allowed (an infinite loop?)"
        if self.killed_by_signal is not None:
            return f"crashed: the Python process was killed by signal {signal.Signals(self.killed_by_signal).name}"
        if self.returncode != 0:
            return f"exited with status {self.returncode}"
        return "finished"


def read_json_result(stdout: bytes, marker: str) -> tuple[bool, Any]:
    """The value on the last stdout line that starts with `marker`, parsed as JSON: (True, value),
    or (False, None) when there is no such complete line (the child died, exited early, or its
    output was truncated).

    read_json_result(b'hello\\n@@R {"a": [1, 2]}\\n', "@@R ") -> (True, {'a': [1, 2]})
    read_json_result(b'PASS\\n', "@@R ")                       -> (False, None)

    json.loads only builds dicts, lists, str, int, float, bool and None, so no object of the
    child's making can cross. Pick a marker the learner cannot guess (a random token per run)
    if a forged line could matter; for a grader it cannot raise a score, since the trusted
    side compares whatever comes back with its own reference.
    """
    prefix = marker.encode()
    for line in reversed(stdout.split(b"\n")[:-1]):  # [:-1]: a line without its newline is cut off
        if line.startswith(prefix):
            try:
                return True, json.loads(line[len(prefix):])
            except ValueError:  # UnicodeDecodeError is a ValueError too
                return False, None
    return False, None


@functools.lru_cache(maxsize=None)
def bubblewrap_problem() -> str | None:
    """Why bubblewrap cannot be used on this machine, or None when it works (probed once)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bwrap not found; install it with `apt-get install -y bubblewrap`"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "setpriv not found (util-linux), needed to drop root inside the sandbox"
    probe = [bwrap, *_namespace_flags(), "--ro-bind", "/", "/", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bwrap failed to start: {err}"
    if done.returncode != 0:
        return f"bwrap cannot create namespaces here: {done.stderr.strip() or f'status {done.returncode}'}"
    return None


def _namespace_flags() -> list[str]:
    """New namespaces for everything. As root, no user namespace: bwrap then sets up the sandbox
    with real privileges and `setpriv` drops them, so the child's uid is unprivileged for real
    (inside a user namespace root would stay uid 0 to the kernel, which exempts it from
    RLIMIT_NPROC). As another user, a user namespace is what lets bwrap work at all."""
    shared = ["--die-with-parent", "--new-session"]
    if os.geteuid() == 0:
        return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try", *shared]
    return ["--unshare-all", *shared]


@functools.lru_cache(maxsize=None)
def _interpreter_paths(python: str) -> tuple[str, ...]:
    """The directories `python` needs: its prefixes (a venv and the Python it was made from)
    and the directory of the binary its path resolves to."""
    query = "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]))"
    done = subprocess.run([python, "-I", "-c", query], capture_output=True, text=True, timeout=60, check=True)
    paths = {*json.loads(done.stdout), os.path.dirname(os.path.realpath(python))}
    return tuple(sorted(paths))


def _check_file_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or name.endswith("/"):
        raise ValueError(f"file names must be relative paths without '..', got {name!r}")
    return path


def _write_files(directory: Path, files: Mapping[str, bytes | str]) -> None:
    for name, content in files.items():
        target = directory / _check_file_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)


def _outermost(paths: Sequence[str], covered: Sequence[str]) -> list[str]:
    """`paths` without those inside another one or inside `covered` (bound already).

    _outermost(["/v/bin", "/v", "/usr/lib/x"], covered=["/usr"]) -> ["/v"]
    """
    def inside(path: str, other: str) -> bool:
        return path != other and path.startswith(other.rstrip("/") + "/")

    unique = sorted(set(paths))
    return [path for path in unique if not any(inside(path, other) for other in (*unique, *covered))]


def _make_parents(path: str, made: set[str]) -> list[str]:
    """bwrap arguments creating the missing parents of `path` as mode 0755 directories (bwrap
    would make them 0700 and root's, which the unprivileged child could not enter)."""
    args = []
    for parent in reversed(PurePosixPath(path).parents):
        if str(parent) not in made:
            made.add(str(parent))
            args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _bwrap_command(
    host_root: Path,
    files: Mapping[str, bytes | str],
    python: str,
    readable: Sequence[Path],
    masked: Sequence[Path],
    limits: Limits,
) -> list[str]:
    """The bwrap command line: code at /sandbox/main.py, files read-only in /sandbox/work (a
    tmpfs, the working directory), everything else the child may read bound read-only."""
    work = f"{_SANDBOX_ROOT}/work"
    scratch = str(limits.scratch_bytes)
    args = [shutil.which("bwrap") or "bwrap", *_namespace_flags(), "--proc", "/proc", "--dev", "/dev"]
    # The writable tmpfs first: a path bound later may lie inside one (a readable folder in /tmp).
    for shared in ("/tmp", "/dev/shm"):  # /dev/shm: multiprocessing's semaphores live there
        args += ["--perms", "1777", "--size", scratch, "--tmpfs", shared]
    args += ["--perms", "0755", "--dir", _SANDBOX_ROOT, "--perms", "0777", "--size", scratch, "--tmpfs", work]
    made = {"/", "/dev", "/proc", "/tmp", _SANDBOX_ROOT, work}  # directories the child can enter
    args += ["--ro-bind", "/usr", "/usr"]
    for top in _TOP_LEVEL_LINKS:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for etc in filter(os.path.exists, _ETC_FILES):
        args += _make_parents(etc, made) + ["--ro-bind", etc, etc]
    for path in _outermost([*_interpreter_paths(python), *map(str, readable)], covered=("/usr",)):
        args += _make_parents(path, made) + ["--ro-bind", os.path.realpath(path), path]
    for path in map(str, masked):  # after the binds, so that they cover what the binds showed
        if os.path.isdir(path):
            args += ["--tmpfs", path, "--remount-ro", path]
        else:
            args += ["--ro-bind", "/dev/null", path]
    args += ["--ro-bind", str(host_root / "main.py"), f"{_SANDBOX_ROOT}/main.py"]
    for name in files:
        args += _make_parents(f"{work}/{name}", made) + ["--ro-bind", str(host_root / "work" / name), f"{work}/{name}"]
    args += ["--chdir", work]
    if os.geteuid() == 0:
        uid = str(limits.uid)
        args += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                 "--bounding-set=-all", "--"]
    return args + [python, "-I", "-B", f"{_SANDBOX_ROOT}/main.py"]


def _usable_by_anyone(python: str) -> bool:
    """Whether any user may run `python`: every folder on the way to it (and to the binary its
    links lead to) lets others through, and the binary lets others execute it."""
    for path in (Path(os.path.abspath(python)), Path(os.path.realpath(python))):
        for folder in path.parents:
            if not os.stat(folder).st_mode & 0o001:
                return False
        if not os.stat(path).st_mode & 0o001:
            return False
    return True


CGROUP_ROOT = Path("/sys/fs/cgroup")


class _Cgroups:
    """One cgroup per run in each cgroup-v1 controller (cpu, memory, pids) that this machine
    lets the grader write, with the run's limits. Unlike rlimits, they bind the child's
    processes together whatever their uid (root included), count resident memory rather than
    address space, share out the CPU (no submission takes every core), and list every process
    the run started, so that all can be killed. Where one cannot be made (not root, cgroup v2,
    a read-only /sys/fs/cgroup), the run goes on without it and `describe` says so."""

    def __init__(self, name: str, limits: Limits) -> None:
        period = 100_000  # microseconds; the quota is the CPU time per period (1 core = period)
        settings = {
            "cpu": {"cpu.cfs_period_us": period, "cpu.cfs_quota_us": max(1000, int(period * limits.cpus))},
            "memory": {"memory.limit_in_bytes": limits.memory_bytes},
            "pids": {"pids.max": limits.max_processes},
        }
        self.limits = limits
        self.folders: dict[str, Path] = {}
        self.problem = "not root" if os.geteuid() != 0 else None
        for controller, values in settings.items():
            if self.problem == "not root" or not (CGROUP_ROOT / controller / "cgroup.procs").is_file():
                continue
            folder = CGROUP_ROOT / controller / "course-grading" / name
            try:
                folder.mkdir(parents=True)
                for file, value in values.items():
                    (folder / file).write_text(str(value))
            except OSError as err:
                self.problem = f"{controller}: {err.strerror}"
                _remove_folder(folder)
                continue
            self.folders[controller] = folder

    def allow(self, uid: int) -> None:
        """Let a child that runs as `uid` move itself into the cgroups."""
        for folder in self.folders.values():
            os.chown(folder / "cgroup.procs", uid, uid)

    def join(self) -> None:
        """Move the calling process (the child, before exec) into every cgroup."""
        pid = str(os.getpid()).encode()
        for folder in self.folders.values():
            fd = os.open(folder / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def end(self) -> None:
        """Kill every process in the cgroups, then remove them."""
        for folder in self.folders.values():
            give_up = time.monotonic() + 5.0
            while (pids := _read_pids(folder / "cgroup.procs")) and time.monotonic() < give_up:
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.02)
            _remove_folder(folder)

    def describe(self) -> str:
        held = {"cpu": f"{self.limits.cpus:g} CPU", "memory": f"{self.limits.memory_bytes / GiB:g} GiB resident",
                "pids": f"{self.limits.max_processes} processes"}
        if not self.folders:
            return f"no cgroup ({self.problem or 'no cgroup v1 controllers here'})"
        return "cgroup: " + ", ".join(held[controller] for controller in self.folders)


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(line) for line in path.read_text().split()]
    except OSError:
        return []


def _remove_folder(folder: Path) -> None:
    """rmdir a cgroup, waiting a little for its last processes to be reaped."""
    give_up = time.monotonic() + 2.0
    while folder.exists():
        try:
            folder.rmdir()
        except OSError:
            if time.monotonic() > give_up:
                return
            time.sleep(0.02)


def _set_limits(limits: Limits, cgroups: _Cgroups) -> None:
    """Runs in the child between fork and exec (so only system calls: nothing that locks)."""
    cgroups.join()
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.max_file_bytes, limits.max_file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash must not write a core file
    if os.geteuid() == 0:
        # Root ignores it; it takes hold when setpriv drops to Limits.uid inside bubblewrap. For
        # another user it would count all their processes (a desktop's too), so it is left alone.
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))


class _CappedReader:
    """Keeps the first `cap` bytes read from a pipe, counts and drops the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.kept = 0
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        room = self.cap - self.kept
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[:room]
        if chunk:
            self.chunks.append(chunk)
            self.kept += len(chunk)

    def value(self) -> bytes:
        return b"".join(self.chunks)


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the child's process group (under bubblewrap, killing bwrap ends its pid namespace)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class _Lines:
    """Splits the kept stdout into lines as it arrives and hands each to `on_line`, whose answer
    (seconds) moves the step deadline: the time by which the next line must have come."""

    def __init__(self, on_line: Callable[[bytes], float | None] | None, first_line_seconds: float | None) -> None:
        self.on_line = on_line
        self.partial = b""
        self.deadline = math.inf if first_line_seconds is None else time.monotonic() + first_line_seconds

    def feed(self, chunk: bytes) -> None:
        if self.on_line is None:
            return
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        for line in lines:
            allowed = self.on_line(line)
            if allowed is not None:
                self.deadline = time.monotonic() + allowed


def processes_of(uid: int) -> list[int]:
    """The pids of this machine's processes that run as `uid` (read from /proc)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat(follow_symlinks=False).st_uid == uid:
                    found.append(int(entry.name))
            except OSError:  # it ended meanwhile
                continue
    return found


def kill_processes_of(uid: int, patience: float = 5.0) -> list[int]:
    """SIGKILL every process running as `uid`, again until none is left or `patience` seconds
    have passed; return those still there (a zombie whose parent has not reaped it yet)."""
    give_up = time.monotonic() + patience
    while (left := processes_of(uid)) and time.monotonic() < give_up:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)
    return left


def _communicate(process: subprocess.Popen, payload: bytes, limits: Limits,
                 lines: _Lines) -> tuple[bytes, bytes, bool, bool, bool]:
    """Feed stdin, read both outputs with caps until the child exits, the wall limit passes or
    the step deadline of `lines` passes.

    Returns (stdout, stderr, timed_out, stalled, truncated). The parent's memory stays bounded
    whatever the child prints. Once the main child has exited, its group is killed, so a
    background process holding the pipes open cannot keep the parent waiting."""
    deadline = time.monotonic() + limits.wall_seconds
    readers = {stream: _CappedReader(limits.max_output_bytes) for stream in (process.stdout, process.stderr)}
    selector = selectors.DefaultSelector()
    for stream in readers:
        os.set_blocking(stream.fileno(), False)
        selector.register(stream, selectors.EVENT_READ)
    pending = memoryview(payload)
    if pending:
        os.set_blocking(process.stdin.fileno(), False)
        selector.register(process.stdin, selectors.EVENT_WRITE)
    else:
        process.stdin.close()
    timed_out = stalled = False
    exited_at: float | None = None
    while selector.get_map():
        now = time.monotonic()
        if now >= deadline or (now >= lines.deadline and exited_at is None):
            running = process.poll() is None
            timed_out, stalled = running and now >= deadline, running and now < deadline
            _kill_group(process)
            break
        if exited_at is None and process.poll() is not None:
            exited_at = now
            _kill_group(process)  # leftovers of the fallback mode; bwrap's namespace is gone already
        if exited_at is not None and now - exited_at > 1.0:
            break  # pipes still open after everything was killed: nothing more will come
        for key, _ in selector.select(timeout=0.05):
            stream = key.fileobj
            if stream is process.stdin:
                try:
                    written = os.write(stream.fileno(), pending[:_READ_CHUNK])
                except (BrokenPipeError, BlockingIOError) as err:
                    written = 0 if isinstance(err, BlockingIOError) else len(pending)
                pending = pending[written:]
                if not pending:
                    selector.unregister(stream)
                    stream.close()
                continue
            chunk = os.read(stream.fileno(), _READ_CHUNK)
            if chunk:
                kept = readers[stream].kept
                readers[stream].feed(chunk)
                if stream is process.stdout:
                    lines.feed(chunk[: readers[stream].kept - kept])  # only what is kept
            else:
                selector.unregister(stream)
    selector.close()
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        stream.close()
    out, err = readers.values()
    return out.value(), err.value(), timed_out, stalled, out.truncated or err.truncated


def run_sandboxed(
    code: str,
    payload: bytes | str = b"",
    *,
    files: Mapping[str, bytes | str] | None = None,
    limits: Limits = Limits(),
    readable: Sequence[Path] = (),
    masked: Sequence[Path] = (),
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    use_bubblewrap: bool = True,
    on_line: Callable[[bytes], float | None] | None = None,
    first_line_seconds: float | None = None,
) -> SandboxResult:
    """Run `code` with `python -I -B` in a sandbox, `payload` on its stdin; never raises for
    anything the code does.

    files: name -> content, put in the child's working directory (its cwd; read-only under
    bubblewrap, where the directory is a size-capped tmpfs; on disk and uncapped in the fallback).
    readable: extra paths the child may read (bound read-only at the same path), such as the
    course_lib package for an editable install; the interpreter's own prefixes always are.
    masked: paths inside `readable` the child must not see (emptied), e.g. the grader's check
    definitions that hold expected values. env: variables added to the child's small
    environment (PATH, HOME, TMPDIR, LANG). use_bubblewrap=False forces the rlimits-only mode.
    on_line: called in the parent with each complete line of stdout as it arrives; a number it
    returns is how many seconds the child then has to print its next line, and a child that
    takes longer is stopped (`stalled`). first_line_seconds: the same, for the first line. So the
    parent, not a timer inside the child, limits each step of a child that reports its progress.

    run_sandboxed("print(input()[::-1])", "abc").stdout -> b'cba\\n'
    """
    problem = bubblewrap_problem() if use_bubblewrap else "not requested"
    own_uid = limits.uid is None  # then nobody else runs as it, and what is left can be killed
    limits = dataclasses.replace(limits, uid=fresh_uid()) if own_uid else limits
    payload_bytes = payload.encode() if isinstance(payload, str) else payload
    files = dict(files or {})
    # ignore_cleanup_errors: a file the child left behind must not crash a batch of gradings.
    with tempfile.TemporaryDirectory(prefix="sandbox-", ignore_cleanup_errors=True) as tmp:
        host_root = Path(tmp)
        (host_root / "main.py").write_text(code)
        (host_root / "work").mkdir()
        _write_files(host_root / "work", files)
        switch_user: dict[str, Any] = {}
        cgroups = _Cgroups(f"run-{os.getpid()}-{limits.uid}-{secrets.token_hex(4)}", limits)
        if problem is None:
            command = _bwrap_command(host_root, files, python, readable, masked, limits)
            cwd, home = None, "/tmp"
            as_root = os.geteuid() == 0
            isolation = f"bubblewrap (as uid {limits.uid})" if as_root else "bubblewrap (process limit not enforced: not root)"
        else:
            (host_root / "tmp").mkdir()
            command = [python, "-I", "-B", str(host_root / "main.py")]
            cwd, home = host_root / "work", str(host_root / "tmp")
            if os.geteuid() == 0 and _usable_by_anyone(python):  # its own uid: limited, and found afterwards
                for path in (host_root, *host_root.rglob("*")):
                    os.chown(path, limits.uid, limits.uid, follow_symlinks=False)
                cgroups.allow(limits.uid)  # the child joins them after it has become that uid
                switch_user = {"user": limits.uid, "group": limits.uid, "extra_groups": []}
                isolation = (f"rlimits only: bubblewrap unavailable ({problem}); as uid {limits.uid}, whose "
                             "processes are killed when the run ends; the code can read every file that "
                             "any user may read, and reach the network")
            else:
                isolation = (f"rlimits only: bubblewrap unavailable ({problem}); "
                             + (f"{python} is not usable by another user, so the code runs as root, without "
                                "a process limit; " if os.geteuid() == 0 else "")
                             + "the code can read this user's files and reach the network, and a process "
                             "that leaves its session (setsid) can outlive the run")
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
                 **(env or {})},
            start_new_session=True,
            preexec_fn=functools.partial(_set_limits, limits, cgroups),
            **switch_user,
        )
        try:
            lines = _Lines(on_line, first_line_seconds)
            stdout, stderr, timed_out, stalled, truncated = _communicate(process, payload_bytes, limits, lines)
        finally:
            _kill_group(process)  # also when the parent itself is interrupted
            process.wait()
            cgroups.end()
            if os.geteuid() == 0 and own_uid:
                # Under bubblewrap the kernel ends the sandbox's pid namespace with bwrap, but not
                # at once; without it a process may have left the group (setsid). Either way,
                # nothing of the child's uid is left when the run is reported over.
                kill_processes_of(limits.uid)
        elapsed = time.monotonic() - started
        isolation += f"; {cgroups.describe()}"
    status, signal_number = _exit_status(process.returncode, under_bubblewrap=problem is None)
    return SandboxResult(
        returncode=status,
        stdout=stdout,
        stderr=stderr.decode(errors="replace"),
        timed_out=timed_out,
        killed_by_signal=signal_number,
        output_truncated=truncated,
        isolation=isolation,
        wall_seconds=elapsed,
        stalled=stalled,
    )


def _exit_status(returncode: int, under_bubblewrap: bool) -> tuple[int, int | None]:
    """(status as the shell shows it, signal that ended the child or None).

    Popen reports a signal n as -n: _exit_status(-11, False) -> (139, 11). bwrap itself exits
    with 128 + n when its child dies of signal n: _exit_status(139, True) -> (139, 11). (So under
    bubblewrap, `sys.exit(139)` reads as a crash too; both score the same.)
    """
    if returncode < 0:
        return 128 - returncode, -returncode
    if under_bubblewrap and returncode > 128:
        return returncode, returncode - 128
    return returncode, None
