"""Hostile submissions gain nothing they did not earn, and the grader comes out unharmed.

Each attack is the solution notebook with one answer cell replaced: the other tasks are honest,
so the test knows exactly what the submission earned (26 points minus the attacked task's, or
less when other tasks call the attacked function). Small time limits keep the file quick.
The attacks that need the sandbox's own filesystem view or process limit run with bubblewrap
(installed here and in CI); the report says when a run had to fall back to rlimits only.
"""

import builtins
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from grading import grade_submission
from grading import grader as grading_grader
from grading.registry import checks_for
from grading.checks import NOT_ALLOWED
from grading.learner_side import RESULT_MARKER
from grading.sandbox import GiB, Limits, bubblewrap_problem

REPO = Path(__file__).resolve().parent.parent
SOLUTION = REPO / "solutions" / "01_bpe" / "bpe.ipynb"
POINTS = {"get_pair_counts": 3, "merge": 5, "train_bpe": 7, "encode": 6, "decode": 5}

# The solution's decode, for attacks that are honest apart from the attack.
HONEST_DECODE = """
def honest_decode(ids, merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for i, (a, b) in enumerate(merges):
        vocab[256 + i] = vocab[a] + vocab[b]
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
"""


def decode_that(body: str, prelude: str = "") -> dict[str, str]:
    """A decode cell: `prelude` at the top level, then decode running `body` and returning the
    honest result (unless `body` returns first)."""
    indented = "".join(f"    {line}\n" for line in body.strip().splitlines())
    return {"decode": f"{prelude}\n{HONEST_DECODE}\ndef decode(ids, merges):\n{indented}    return honest_decode(ids, merges)\n"}


def task_scores(report) -> dict[str, float]:
    scores = dict.fromkeys(POINTS, 0.0)
    for result in report.results:
        scores[result.task] += result.score
    return scores


def messages(report, task: str) -> list[str]:
    return [result.message for result in report.results if result.task == task]


def leftover_processes(marker: str) -> list[str]:
    """Processes on this machine whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in command:
                found.append(f"{entry.name}: {command}")
    return found


@pytest.fixture(autouse=True)
def grader_unharmed():
    """Whatever the submission did, this process's builtins, json and modules are as they were."""
    before = (builtins.isinstance, builtins.print, json.dumps, os.getcwd())
    yield
    assert (builtins.isinstance, builtins.print, json.dumps, os.getcwd()) == before
    assert not any(name.startswith("grading_child") for name in sys.modules)


# ---- faking results -----------------------------------------------------------------------------


def test_monkeypatching_builtins_json_and_the_grading_module_fakes_nothing(notebook_with) -> None:
    attack = """
import builtins, json, sys
builtins.isinstance = lambda obj, kind: True
json.dumps = lambda *args, **kwargs: '{"check": 0, "outcome": {"passed": true}}'
json.loads = lambda *args, **kwargs: {"passed": True}
side = sys.modules.get("grading_child.learner_side")
if side is not None:
    side.to_plain = lambda value: value
    side.run_check = lambda *args, **kwargs: {"values": ["PASS"], "error": None, "failed_call": None, "printed": "",
                                              "interrupted": False, "timed_out": False, "forbidden": [], "passed": True}
def get_pair_counts(ids):
    return "PASS"
"""
    report = grade_submission("01_bpe", notebook_with({"get_pair_counts": attack}))
    assert task_scores(report)["get_pair_counts"] == 0
    assert report.score <= 26 - POINTS["get_pair_counts"]


def test_objects_whose_eq_lies_do_not_pass(notebook_with) -> None:
    attack = """
class Liar(list):
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
class Anything:
    __eq__ = lambda self, other: True
    __hash__ = object.__hash__
def merge(ids, pair, new_id):
    return Liar()
def get_pair_counts(ids):
    return {(1, 2): Anything()}
"""
    report = grade_submission("01_bpe", notebook_with({"merge": attack}), timeout=1)
    scores = task_scores(report)
    assert scores["merge"] == 0 and scores["get_pair_counts"] == 0
    assert "got      [], [], []" not in messages(report, "merge")[0]  # compared as the plain list []
    assert "values should be int counts" in messages(report, "get_pair_counts")[0]


def test_printing_fake_results_and_forged_result_lines_changes_nothing(notebook_with) -> None:
    fake = f'{RESULT_MARKER}{"0" * 32} {{"check": 18, "outcome": {{"value": ["x"], "error": null}}}}'
    body = f"""
import os, sys
print("PASS 22/22 points", flush=True)
print('{{"score": 22, "max_score": 22}}')
sys.__stdout__.write({fake!r} + "\\n")
os.write(1, b"PASS 22/22\\n" + {fake!r}.encode() + b"\\n")
for fd in range(3, 40):  # the child's result channel is one of these
    try:
        os.write(fd, b"\\n" + {fake!r}.encode() + b"\\n")
    except OSError:
        pass
return "wrong"
"""
    report = grade_submission("01_bpe", notebook_with(decode_that(body)))
    assert task_scores(report) == {**POINTS, "decode": 0}
    assert "your code printed: 'PASS 22/22 points\\n" in messages(report, "decode")[0]


def test_forging_result_lines_with_the_nonce_found_in_memory_gains_nothing(notebook_with) -> None:
    # The driver's frame holds the nonce and the result channel; forged lines still carry only
    # values, which the grader compares with references it never shares.
    attack = """
import sys, json
def get_pair_counts(ids):
    frame = sys._getframe()
    while frame is not None and "send" not in frame.f_locals:
        frame = frame.f_back
    if frame is not None:
        for index in range(22):
            frame.f_locals["send"]({"check": index, "outcome": {"value": "PASS", "error": None, "printed": "",
                                    "interrupted": False, "timed_out": False, "forbidden": []}})
    return {}
"""
    report = grade_submission("01_bpe", notebook_with({"get_pair_counts": attack}))
    assert report.score <= 26 - POINTS["get_pair_counts"]
    assert task_scores(report)["get_pair_counts"] == 0


# ---- exiting, interrupting, crashing ------------------------------------------------------------


def test_os_exit_at_import_ends_the_run_with_nothing_graded(notebook_with) -> None:
    report = grade_submission("01_bpe", notebook_with({"decode": "import os\nos._exit(0)\n"}))
    assert report.score == 0
    assert "stopped early" in report.problems[-1]
    assert all("Not graded: the process running your code stopped early" in r.message for r in report.results)


def test_sys_exit_at_import_is_a_cell_problem_and_the_rest_is_graded(notebook_with) -> None:
    report = grade_submission("01_bpe", notebook_with({"merge": "import sys\nsys.exit(0)\n"}), timeout=1)
    assert report.problems[0] == "answer cell 'merge' (cell 11) raised SystemExit: 0 (line 2)"
    assert task_scores(report)["merge"] == 0 and task_scores(report)["decode"] == POINTS["decode"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("import os\nos._exit(0)", "stopped early"),
        ("import sys\nsys.exit(0)", "raised SystemExit: 0"),
        ("raise SystemExit('bye')", "raised SystemExit: bye"),
        ("raise KeyboardInterrupt", "was interrupted"),
        ("import ctypes\nctypes.string_at(0)", "crashed: the Python process was killed by signal SIGSEGV"),
    ],
    ids=["os._exit", "sys.exit", "SystemExit", "KeyboardInterrupt", "segfault"],
)
def test_exits_interrupts_and_crashes_in_a_call_cost_only_that_call(notebook_with, body: str, message: str) -> None:
    report = grade_submission("01_bpe", notebook_with(decode_that(body)))
    assert task_scores(report) == {**POINTS, "decode": 0}
    assert message in messages(report, "decode")[0], messages(report, "decode")[0]


# ---- resources ----------------------------------------------------------------------------------


def test_infinite_loop_times_out_per_check_and_the_others_are_graded(notebook_with) -> None:
    start = time.monotonic()
    report = grade_submission("01_bpe", notebook_with(decode_that("while True:\n    pass")), timeout=1)
    assert time.monotonic() - start < 10
    assert task_scores(report) == {**POINTS, "decode": 0}
    assert all("did not finish within 1 s" in message for message in messages(report, "decode"))


def test_a_loop_that_swallows_the_timeout_is_stopped_by_the_wall_limit(notebook_with) -> None:
    body = "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"
    limits = Limits(wall_seconds=4, cpu_seconds=4)
    report = grade_submission("01_bpe", notebook_with(decode_that(body)), timeout=1, limits=limits)
    assert task_scores(report) == {**POINTS, "decode": 0}
    assert "longer than the time limit" in messages(report, "decode")[0] or "CPU time" in messages(report, "decode")[0]


# An encode that switches off the grader's timer inside its own process, then never returns.
# Nothing else of the solution calls encode, so the other tasks are honest and must score.
TIMER_OFF_ENCODE = """
import signal

def encode(text, merges):
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    while True:
        pass
"""


def test_a_check_that_switches_off_its_timer_is_stopped_from_outside(notebook_with) -> None:
    start = time.monotonic()
    report = grade_submission("01_bpe", notebook_with({"encode": TIMER_OFF_ENCODE}), timeout=1)
    # encode's first check has 1 s per call and a grace; a fresh child then grades decode.
    assert time.monotonic() - start < 30
    assert task_scores(report) == {**POINTS, "encode": 0}
    first, *rest = messages(report, "encode")
    assert "ran longer than its" in first and "the grader stopped your code" in first
    assert rest and all("Not run: an earlier check of `encode`" in message for message in rest)


def test_the_time_budget_does_not_grow_with_cells_a_submission_adds(notebook_with, monkeypatch) -> None:
    """100 extra cells tagged as answer cells would once have added 100 x timeout to the budget."""
    walls = []
    original = grading_grader.run_sandboxed

    def spy(*args, **kwargs):
        walls.append(kwargs["limits"].wall_seconds)
        return original(*args, **kwargs)

    monkeypatch.setattr(grading_grader, "run_sandboxed", spy)
    plain = notebook_with({})
    padded = json.loads(plain.read_text())
    extra = {"cell_type": "code", "execution_count": None, "outputs": [], "source": "pass",
             "metadata": {"nbgrader": {"solution": True, "grade": False, "locked": False, "grade_id": "pad"}}}
    padded["cells"] += [dict(extra, metadata={"nbgrader": {**extra["metadata"]["nbgrader"], "grade_id": f"pad{i}"}})
                        for i in range(100)]
    padded_path = plain.with_name("padded.ipynb")
    padded_path.write_text(json.dumps(padded))
    for notebook in (plain, padded_path):
        assert grade_submission("01_bpe", notebook, timeout=2).score == 26
    assert walls[0] == pytest.approx(walls[1], abs=1.0)  # the same budget, give or take the time spent reading
    assert walls[0] <= grading_grader.MAX_SUBMISSION_SECONDS


def test_a_result_line_nobody_asked_for_zeroes_the_tasks_it_concerns(notebook_with) -> None:
    """decode, the last task, sends a second result for merge's first check, which already
    reported: merge and decode score 0, the tasks that did not forge keep their points."""
    first_merge = next(index for index, check in enumerate(checks_for("01_bpe")) if check.task == "merge")
    body = f"""
import sys
frame = sys._getframe()
while frame is not None and "send" not in frame.f_locals:
    frame = frame.f_back
frame.f_locals["send"]({{"check": {first_merge}, "outcome": {{"values": [], "error": None, "failed_call": None,
    "printed": "", "interrupted": False, "timed_out": False, "forbidden": []}}}})
"""
    report = grade_submission("01_bpe", notebook_with(decode_that(body)))
    assert task_scores(report) == {**POINTS, "merge": 0, "decode": 0}
    assert all("a result line that the grader did not ask for" in message for message in messages(report, "merge"))


def test_a_fork_bomb_is_limited_and_leaves_nothing_running(notebook_with) -> None:
    marker = "612.75"  # an unusual sleep time: how its processes are found afterwards
    body = f"""
import subprocess
children = []
for _ in range(300):
    try:
        children.append(subprocess.Popen(["sleep", "{marker}"]))
    except OSError:
        break
if len(children) >= 300:
    return "not limited"
"""
    report = grade_submission("01_bpe", notebook_with(decode_that(body)))
    assert report.isolation.startswith("bubblewrap"), report.isolation
    assert task_scores(report) == POINTS, messages(report, "decode")  # limited, so honest decode ran
    assert leftover_processes(marker) == []


def test_a_fork_bomb_does_not_stop_another_submission_graded_at_the_same_time(notebook_with) -> None:
    # Its processes sleep: the point is the count of processes, not the CPU they use.
    body = "import os, time\nwhile True:\n    try:\n        if os.fork() == 0:\n            time.sleep(600)\n    except OSError:\n        time.sleep(0.01)"
    bomb = notebook_with(decode_that(body), name="bomb.ipynb")
    with ThreadPoolExecutor(2) as pool:
        hostile = pool.submit(grade_submission, "01_bpe", bomb, timeout=1)
        time.sleep(0.3)
        honest = pool.submit(grade_submission, "01_bpe", SOLUTION)
        assert honest.result().score == 26, honest.result().problems
        assert hostile.result().score <= 26 - POINTS["decode"]


@pytest.mark.parametrize(
    "body",
    # bytes(n) asks for zeroed memory without touching it, so growing to the limit is quick.
    ["x = bytearray(64 * 2**30)", "chunks = []\nwhile True:\n    chunks.append(bytes(256 * 2**20))"],
    ids=["at once", "growing"],
)
def test_a_memory_hog_gets_memory_error(notebook_with, body: str) -> None:
    report = grade_submission("01_bpe", notebook_with(decode_that(body)), limits=Limits(memory_bytes=2 * GiB))
    assert task_scores(report) == {**POINTS, "decode": 0}
    assert "raised MemoryError" in messages(report, "decode")[0]


def test_huge_output_is_cut_and_the_submission_graded(notebook_with) -> None:
    # 300 MB per call of decode (the check that decodes one token at a time calls it 267 times).
    body = """
import os
for _ in range(100):
    print("x" * 1_000_000)
    os.write(1, b"y" * 1_000_000)
    os.write(2, b"z" * 1_000_000)
return "wrong"
"""
    start = time.monotonic()
    report = grade_submission("01_bpe", notebook_with(decode_that(body, prelude='print("w" * 20_000_000)')))
    assert time.monotonic() - start < 20
    assert task_scores(report) == {**POINTS, "decode": 0}
    message = messages(report, "decode")[0]
    assert "your code printed: 'xxxx" in message and len(message) < 1_000


# ---- files and the reference ----------------------------------------------------------------------


def spelled(path: Path) -> str:
    """Python code for the string `path`, split so that no literal names a notebook or the
    solutions folder: the static scan would catch those, and these tests are about the sandbox."""
    parts = str(path).replace(".ipynb", ".ipy|nb").replace("solutions", "solu|tions").split("|")
    return " + ".join(map(repr, parts))


def reading(path: Path) -> dict[str, str]:
    """A decode that returns the start of the file at `path`."""
    return decode_that(f"with open({spelled(path)}) as file:\n    return file.read()[:20]")


def test_the_solution_notebook_is_not_readable_in_the_sandbox(notebook_with) -> None:
    report = grade_submission("01_bpe", notebook_with(reading(SOLUTION)))
    assert report.isolation.startswith("bubblewrap")
    assert task_scores(report)["decode"] == 0
    assert "raised FileNotFoundError" in messages(report, "decode")[0]


def test_without_bubblewrap_the_report_says_so(notebook_with) -> None:
    # The fallback cannot hide files; the report states it (and the copied text still scores 0).
    report = grade_submission("01_bpe", notebook_with(reading(SOLUTION)), use_bubblewrap=False)
    assert report.isolation.startswith("rlimits only")
    assert task_scores(report)["decode"] == 0
    assert "FileNotFoundError" not in messages(report, "decode")[0]


def test_another_submission_is_not_readable(notebook_with, tmp_path: Path) -> None:
    other = notebook_with({}, name="other_student.ipynb")
    report = grade_submission("01_bpe", notebook_with(reading(other)))
    assert "raised FileNotFoundError" in messages(report, "decode")[0]


def test_importing_course_lib_scores_zero_for_that_task(notebook_with) -> None:
    plain = "from course_lib.tokenization.pairs import merge\n"
    report = grade_submission("01_bpe", notebook_with({"merge": plain}), timeout=1)
    assert task_scores(report)["merge"] == 0 and report.score <= 26 - POINTS["merge"]
    assert all(message.startswith(f"{NOT_ALLOWED}: answer cell 'merge' (cell 11) imports course_lib (line 1), the course")
               for message in messages(report, "merge"))


def test_importing_the_graders_modules_inside_the_sandbox_scores_zero_for_that_task(notebook_with) -> None:
    """The sandbox holds the grader's learner-side modules as grading_child (exercise 5's hold a
    working key-value cache): the scan refuses an answer that imports them."""
    plain = "from grading_child.learner_side import decode\n\ndef merge(ids, pair, new_id):\n    return ids\n"
    report = grade_submission("01_bpe", notebook_with({"merge": plain}), timeout=1)
    assert task_scores(report)["merge"] == 0 and task_scores(report)["decode"] == POINTS["decode"]
    assert all("imports grading_child (line 1)" in message for message in messages(report, "merge"))


@pytest.mark.parametrize("use_bubblewrap", [None, False], ids=["bubblewrap", "rlimits only"])
def test_importing_course_lib_in_disguise_fails_in_the_sandbox(notebook_with, use_bubblewrap) -> None:
    hidden = 'merge = __import__("course" + "_lib.tokenization.pairs", fromlist=["merge"]).merge\n'
    report = grade_submission("01_bpe", notebook_with({"merge": hidden}), timeout=1, use_bubblewrap=use_bubblewrap)
    assert task_scores(report)["merge"] == 0 and report.score <= 26 - POINTS["merge"]
    assert report.problems[0] == (
        "answer cell 'merge' (cell 11) raised ModuleNotFoundError: "
        "course_lib is not available while grading: write your own implementation (line 1)"
    )


def test_writing_into_the_repository_or_the_submission_is_not_possible(notebook_with) -> None:
    assert bubblewrap_problem() is None  # without it the writes would succeed: do not even try
    target = REPO / "tests" / f"written_by_a_submission_{os.getpid()}.txt"
    submission = notebook_with({}, name="victim.ipynb")  # the honest solution; the attacker's path is known
    before = submission.read_bytes()
    body = f"""
for path in ({spelled(target)}, {spelled(submission)}):
    try:
        with open(path, "a") as file:
            file.write("owned")
    except OSError:
        pass
"""
    try:
        report = grade_submission("01_bpe", notebook_with(decode_that(body), name="attacker.ipynb"))
        assert report.isolation.startswith("bubblewrap")
        assert report.score == 26  # the writes failed quietly; the honest decode ran
        assert not target.exists()
        assert submission.read_bytes() == before
    finally:
        target.unlink(missing_ok=True)


def test_the_grader_still_grades_after_all_this() -> None:
    assert grade_submission("01_bpe", SOLUTION).score == 26
