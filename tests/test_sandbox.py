"""Hostile tests of grading.sandbox: each one is something a submission could do.

The references are the operating system's own: /proc (which processes exist), a socket this test
listens on, files this test writes, signal numbers from the `signal` module, byte counts.

Tests marked by the `mode` fixture run twice: under bubblewrap and in the rlimits-only fallback.
The bubblewrap-only tests fail (they never skip) on a machine without bubblewrap: install it
with `apt-get install -y bubblewrap`.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import sys
import textwrap
import time
import subprocess
import uuid
from pathlib import Path

import pytest

import course_lib
from grading.sandbox import Limits, SandboxResult, bubblewrap_problem, read_json_result, run_sandboxed

REPO = Path(__file__).resolve().parent.parent
# pytest runs in the course's virtual environment (`make test`), whose python has torch.
VENV_PYTHON = sys.executable
# Small limits keep the hostile tests fast; 1 GiB is plenty for a child that imports no torch.
FAST = Limits(wall_seconds=10, cpu_seconds=5, memory_bytes=1024**3)


def require_bubblewrap() -> None:
    problem = bubblewrap_problem()
    if problem is not None:
        pytest.fail(f"bubblewrap is needed for this test and does not work here: {problem}. "
                    "Install it with `apt-get install -y bubblewrap` (CI installs it).")


@pytest.fixture(params=["bubblewrap", "rlimits"])
def mode(request: pytest.FixtureRequest) -> bool:
    """use_bubblewrap for run_sandboxed: True (required to work) or False (the fallback)."""
    if request.param == "bubblewrap":
        require_bubblewrap()
    return request.param == "bubblewrap"


def run(code: str, payload: bytes | str = b"", *, use_bubblewrap: bool = True, limits: Limits = FAST,
        **kwargs) -> SandboxResult:
    return run_sandboxed(textwrap.dedent(code), payload, limits=limits, use_bubblewrap=use_bubblewrap, **kwargs)


def processes_with(needle: str) -> list[int]:
    """Pids of the processes on this machine whose command line contains `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # it ended while we looked
                pass
    return found


# --- both modes -----------------------------------------------------------------------------

def test_stdout_and_files_come_back_and_the_payload_arrives(mode: bool) -> None:
    payload = "7 " * 200_000  # 400 kB: more than a pipe holds, so stdin is fed while stdout is read
    result = run("""
        import sys
        numbers = sys.stdin.read().split()
        print(len(numbers), sum(map(int, numbers)), open("data/in.txt").read())
    """, payload, files={"data/in.txt": "given"}, use_bubblewrap=mode)
    assert result.stdout == b"200000 1400000 given\n"
    assert (result.returncode, result.timed_out, result.killed_by_signal) == (0, False, None)
    assert not result.output_truncated
    assert result.ok
    assert result.isolation.startswith("bubblewrap" if mode else "rlimits only: bubblewrap unavailable")


def test_a_sleeping_loop_is_stopped_at_the_wall_limit(mode: bool) -> None:
    result = run("import time\nwhile True: time.sleep(0.1)", use_bubblewrap=mode,
                 limits=Limits(wall_seconds=1, cpu_seconds=5))
    assert result.timed_out and result.killed_by_signal == signal.SIGKILL
    assert 1 <= result.wall_seconds < 3
    assert "time limit" in result.describe()


def test_a_busy_loop_is_stopped_at_the_cpu_limit(mode: bool) -> None:
    result = run("while True: pass", use_bubblewrap=mode, limits=Limits(wall_seconds=10, cpu_seconds=1))
    assert not result.timed_out
    assert result.killed_by_signal == signal.SIGXCPU
    assert result.wall_seconds < 5


def test_a_busy_loop_that_ignores_sigxcpu_is_killed_a_second_later(mode: bool) -> None:
    result = run("""
        import signal
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        while True: pass
    """, use_bubblewrap=mode, limits=Limits(wall_seconds=10, cpu_seconds=1))
    assert result.killed_by_signal == signal.SIGKILL and not result.timed_out


@pytest.mark.parametrize("allocation", [
    "bytearray(12 * 2**30)",                                       # one huge block
    "[bytearray(64 * 2**20) for _ in range(200)]",                 # 12.5 GiB, touched, 64 MiB at a time
    "__import__('mmap').mmap(-1, 12 * 2**30)",                     # shared memory, which RLIMIT_DATA misses
])
def test_a_memory_hog_fails_in_the_child_only(mode: bool, allocation: str) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    result = run(f"x = {allocation}\nprint('allocated')", use_bubblewrap=mode)
    assert result.returncode == 1
    assert "MemoryError" in result.stderr or "[Errno 12] Cannot allocate memory" in result.stderr, result.stderr
    assert b"allocated" not in result.stdout
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024


def test_huge_output_is_truncated_and_the_parent_stays_small(mode: bool) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    result = run("""
        import os
        for _ in range(3200):  # 200 MiB on each stream
            os.write(1, b"x" * 65536)
            os.write(2, b"e" * 65536)
    """, use_bubblewrap=mode, limits=Limits(wall_seconds=20, max_output_bytes=100_000))
    assert result.returncode == 0 and result.output_truncated
    assert result.stdout == b"x" * 100_000 and result.stderr == "e" * 100_000
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024


def test_printing_forever_is_stopped_at_the_wall_limit(mode: bool) -> None:
    result = run("while True: print('PASS ' * 1000)", use_bubblewrap=mode,
                 limits=Limits(wall_seconds=1, max_output_bytes=1000))
    assert result.timed_out and result.output_truncated and len(result.stdout) == 1000


def test_a_forked_child_does_not_outlive_the_run(mode: bool) -> None:
    marker = f"1000.{uuid.uuid4().int % 10**9}"  # `sleep 1000.<random>`: findable in /proc
    started = time.monotonic()
    result = run(f"""
        import subprocess
        subprocess.Popen(["sleep", "{marker}"])  # holds stdout open after the main process exits
        print("started")
    """, use_bubblewrap=mode, limits=Limits(wall_seconds=20))
    assert result.stdout == b"started\n" and not result.timed_out
    assert time.monotonic() - started < 5  # the run does not wait for the child's pipes
    assert processes_with(marker) == []


def test_exiting_early_with_status_0_gives_no_result(mode: bool) -> None:
    result = run("""
        import os, sys
        print("PASS: all checks passed")
        sys.stdout.write('@@R {"score": 100}')  # no newline: a cut-off line is not a result
        sys.stdout.flush()
        os._exit(0)
        print('@@R {"score": 0}')  # the real result line would come here
    """, use_bubblewrap=mode)
    assert result.returncode == 0 and result.stdout.startswith(b"PASS")
    assert read_json_result(result.stdout, "@@R ") == (False, None)


def test_a_complete_result_line_is_read_as_plain_data(mode: bool) -> None:
    result = run("print('noise'); print('@@R ' + __import__('json').dumps({'value': [1, 2.5, None, 'a']}))",
                 use_bubblewrap=mode)
    assert read_json_result(result.stdout, "@@R ") == (True, {"value": [1, 2.5, None, "a"]})


@pytest.mark.parametrize("ending, signal_number", [
    ("__import__('ctypes').string_at(0)", signal.SIGSEGV),
    ("raise KeyboardInterrupt", signal.SIGINT),
    ("import os; os.kill(os.getpid(), 9)", signal.SIGKILL),
])
def test_a_crash_is_reported_by_its_signal(mode: bool, ending: str, signal_number: int) -> None:
    result = run(ending, use_bubblewrap=mode)
    assert result.killed_by_signal == signal_number and not result.timed_out
    assert "crashed" in result.describe()


def test_system_exit_is_an_ordinary_nonzero_status(mode: bool) -> None:
    result = run("raise SystemExit(3)", use_bubblewrap=mode)
    assert (result.returncode, result.killed_by_signal) == (3, None)


def test_a_file_over_the_size_limit_cannot_be_written(mode: bool) -> None:
    result = run("""
        try:
            open("big", "wb").write(b"x" * 2_000_000)
        except OSError as err:
            print(err.errno)
    """, use_bubblewrap=mode, limits=Limits(max_file_bytes=1_000_000))
    assert result.stdout == b"27\n"  # EFBIG


def test_bad_file_names_are_refused() -> None:
    for name in ("../escape", "/etc/passwd", "a/../../b"):
        with pytest.raises(ValueError, match="relative paths"):
            run_sandboxed("pass", files={name: b""})


def test_the_fallback_says_what_it_lacks() -> None:
    result = run("print('hi')", use_bubblewrap=False)
    assert result.isolation.startswith("rlimits only: bubblewrap unavailable (not requested)")


def test_the_fallback_does_not_isolate_the_network() -> None:
    """The network test below can fail: the same connection succeeds without bubblewrap."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        result = run(f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); print('connected')",
                     use_bubblewrap=False)
    assert result.stdout == b"connected\n"


# --- bubblewrap only ------------------------------------------------------------------------

def test_the_repository_and_other_files_are_not_readable(tmp_path: Path) -> None:
    require_bubblewrap()
    secret = Path("/var/tmp") / f"secret-{uuid.uuid4().hex}"
    secret.write_text("the answer")
    try:
        targets = [__file__, REPO / "solutions", REPO / "gradebook.db", REPO / "course_lib", secret, tmp_path,
                   "/root/.bashrc"]
        result = run(f"""
            import os
            for target in {[str(t) for t in targets]!r}:
                print(target, os.path.exists(target))
        """)
    finally:
        secret.unlink()
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().split() == [word for t in targets for word in (str(t), "False")]


def test_only_the_expected_top_level_entries_exist() -> None:
    require_bubblewrap()
    result = run("import os; print(*sorted(os.listdir('/')))")
    assert result.returncode == 0, result.stderr
    # The interpreter's prefixes (here a venv and the Python it was made from) start with these.
    prefixes = {Path(path).parts[1] for path in (sys.prefix, sys.base_prefix)}
    links = {"bin", "lib", "lib32", "lib64", "libx32", "sbin"}  # symlinks into /usr, or read-only copies
    assert set(result.stdout.split()) - {name.encode() for name in links} == {
        name.encode() for name in {"dev", "etc", "proc", "sandbox", "tmp", "usr", *prefixes}}
    etc = run("import os; print(*sorted(os.listdir('/etc')))")
    assert etc.returncode == 0, etc.stderr
    assert b"passwd" in etc.stdout.split()  # the few files named in sandbox.py, nothing like shadow
    shown = {b"ld.so.cache", b"ld.so.conf", b"passwd", b"group", b"nsswitch.conf", b"localtime"}
    assert set(etc.stdout.split()) <= shown


def test_masked_paths_are_empty_and_readable_paths_readable() -> None:
    require_bubblewrap()
    package = Path(course_lib.__file__).parent
    result = run(f"""
        import os
        print(os.path.exists({str(package / "__init__.py")!r}), os.listdir({str(package / "tokenization")!r}))
    """, readable=[package], masked=[package / "tokenization"])
    assert result.stdout == b"True []\n", result.stderr


def test_the_network_is_unreachable() -> None:
    require_bubblewrap()
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        result = run(f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2)
                print("connected")
            except OSError as err:
                print("refused", err.errno)
        """)
    assert result.stdout.startswith(b"refused"), result.stdout


def test_only_the_working_directory_and_tmp_are_writable() -> None:
    require_bubblewrap()
    result = run(f"""
        import os
        for target in ["out.txt", "/tmp/out.txt", "/dev/shm/out.txt", "/sandbox/main.py", "/usr/out.txt",
                       {sys.prefix + "/out.txt"!r}, "data.txt"]:
            try:
                open(target, "w").write("x")
                print(target, "written")
            except OSError:
                print(target, "refused")
    """, files={"data.txt": "given"})
    assert result.stdout.decode().split("\n")[:-1] == [
        "out.txt written", "/tmp/out.txt written", "/dev/shm/out.txt written", "/sandbox/main.py refused",
        "/usr/out.txt refused",
        f"{sys.prefix}/out.txt refused", "data.txt refused"]
    assert not Path(sys.prefix, "out.txt").exists()


def test_the_working_directory_is_capped_in_size() -> None:
    require_bubblewrap()
    result = run("""
        try:
            for i in range(100):
                open(f"f{i}", "wb").write(b"x" * 1_000_000)
        except OSError as err:
            print(i, err.errno)
    """, limits=Limits(scratch_bytes=10_000_000))
    written, errno = map(int, result.stdout.split())
    assert written < 11 and errno == 28  # ENOSPC


# Starts processes until the limit refuses one; prints how many started and the refusal's errno.
START_100_SLEEPERS = """
import subprocess
children = []
try:
    for _ in range(100):
        children.append(subprocess.Popen(["sleep", "30"]))
except OSError as err:
    print(len(children), err.errno)
"""


def test_the_process_limit_holds_as_root() -> None:
    require_bubblewrap()
    result = run(START_100_SLEEPERS, limits=Limits(max_processes=16))
    if os.geteuid() == 0:
        started, errno = map(int, result.stdout.split())
        assert started < 16 and errno == 11  # EAGAIN
    else:  # another user: the limit would count all their processes, so it is not set
        assert "process limit not enforced" in result.isolation


def test_a_child_in_its_own_session_does_not_outlive_the_run() -> None:
    """setsid leaves the process group the fallback kills; bubblewrap's pid namespace still ends it."""
    require_bubblewrap()
    marker = f"1000.{uuid.uuid4().int % 10**9}"
    result = run(f"""
        import subprocess
        subprocess.Popen(["setsid", "sleep", "{marker}"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print("started")
    """)
    assert result.stdout == b"started\n", result.stderr
    assert processes_with(marker) == []


def test_without_bubblewrap_root_runs_the_child_as_its_own_uid_and_ends_what_it_left() -> None:
    """The fallback as root (Gradescope's workers run as root): a process that left its session
    is still found by its uid and killed, and the child cannot write what root owns."""
    marker = f"1000.{uuid.uuid4().int % 10**9}"
    result = run(f"""
        import os, subprocess
        subprocess.Popen(["setsid", "sleep", "{marker}"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            open("/etc/course-grading-test", "w")
        except OSError as err:
            print(os.getuid(), err.errno)
    """, use_bubblewrap=False, python="/usr/bin/python3")
    if os.geteuid() == 0:
        uid, errno = map(int, result.stdout.split())
        assert uid >= 200_000 and f"as uid {uid}" in result.isolation and errno == 13  # EACCES
        assert processes_with(marker) == []
    else:  # another user: the child is that user, as the report says
        assert "a process that leaves its session (setsid) can outlive the run" in result.isolation
        subprocess.run(["pkill", "-f", marker], check=False)


def test_a_cgroup_of_its_own_holds_the_process_limit_even_for_root_and_shares_out_the_cpu() -> None:
    """Run as root (this venv's Python is not usable by other users, so the fallback keeps root):
    RLIMIT_NPROC does not bind root, the run's pids cgroup does. Two busy processes get at most
    the run's share of the CPU, however idle the machine."""
    if os.geteuid() != 0:  # only root can make cgroups: the report says so
        assert "no cgroup (not root)" in run("print(1)").isolation
        return
    result = run(START_100_SLEEPERS, use_bubblewrap=False, limits=Limits(max_processes=16), python=VENV_PYTHON)
    assert "cgroup: 1 CPU, 4 GiB resident, 16 processes" in result.isolation
    started, errno = map(int, result.stdout.split())
    assert started < 16 and errno == 11  # EAGAIN from the pids cgroup
    busy = run("""
        import multiprocessing, time
        def spin(_):
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                pass
            return time.process_time()
        with multiprocessing.Pool(2) as pool:
            print(sum(pool.map(spin, range(2))))
    """, use_bubblewrap=False, limits=Limits(cpus=0.2, wall_seconds=20), python=VENV_PYTHON)
    assert float(busy.stdout) < 0.2 * 2.0 * 1.5  # 2 s of wall time at 0.2 of a core, and some slack


def test_torch_imports_inside(capsys: pytest.CaptureFixture) -> None:
    require_bubblewrap()
    seconds = {}
    for use_bubblewrap in (True, False):
        result = run("import torch; print(torch.ones(3).sum().item())", use_bubblewrap=use_bubblewrap,
                     limits=Limits(), python=VENV_PYTHON)
        assert result.stdout == b"3.0\n", result.stderr
        seconds[use_bubblewrap] = result.wall_seconds
    with capsys.disabled():
        print(f"\n  sandboxed `import torch`: {seconds[True]:.2f} s with bubblewrap, {seconds[False]:.2f} s without")
