"""A batch of submissions: find them, and grade them one sandbox each, several at a time.

Both front ends use this module: the command line (cli.py) and Gradescope's runner
(gradescope.py). A folder is searched for notebooks. In nbgrader's layout,
`<folder>/<student>/<assignment>/<notebook>.ipynb`, the student's name is the submission's id and
the notebook named like the assignment's release (`bpe.ipynb` for 01_bpe) is the submission.
Only that depth counts: other notebooks in a student's folder ("bpe (1).ipynb", or a copy of
someone else's folder inside it) are reported as that student's extra files, never graded under
an id of their own, and a student without a notebook at that place gets a row saying where it
was expected. Outside that layout the id is the notebook's name without .ipynb, or its folder's
name when several notebooks share a name (alice/bpe.ipynb, bob/bpe.ipynb). A notebook given
directly counts as its student's when it sits in nbgrader's own `submitted/<student>/<assignment>/`.

Ids are folder names in the output, so two submissions whose ids are the same once made safe
("a b" and "a_b", or "Ada" and "ada" on a disk that ignores case) are an error for both: neither
is graded, both get a row that says why, and the grader exits with status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing
import os
import re
import sys
from collections import Counter, defaultdict, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from grading.checks import SetupError
from grading.grader import SubmissionReport, grade_submission, ungraded_report
from grading.registry import notebook_for
from grading.results import GRADES_CSV, printable

# Folders a search for notebooks skips: Jupyter's autosaves and what zip tools add.
_SKIPPED_FOLDERS = {".ipynb_checkpoints", "__MACOSX"}


class UsageError(Exception):
    """The grader was called wrongly (not a problem of any submission); the message says how."""


@dataclass(frozen=True)
class Submission:
    """One notebook to grade: its id (a folder name in --out), its path, its student (nbgrader's
    layout) and the other notebooks found beside it (reported, not graded). A submission with a
    `problem` is not graded: its row says the problem, with `status`."""

    id: str
    path: Path
    student: str | None = None
    extra: tuple[Path, ...] = ()
    problem: str | None = None
    status: str = "graded"


# The status of a submission whose id another submission also maps to.
ID_COLLISION = "id collision"


def notebooks_in(folder: Path) -> list[Path]:
    """Every notebook under `folder`, in a stable order, without autosaves and hidden folders.

    Everything named *.ipynb counts, whatever it is, and so does a symbolic link to a folder
    (neither is followed): notebook.read_notebook refuses all but regular files, so a link, a
    FIFO or a device in a student's folder gets a row that says why instead of vanishing.
    """
    found = []
    for root, folders, files in os.walk(folder):
        links = [name for name in folders if os.path.islink(os.path.join(root, name))]
        folders[:] = sorted(name for name in folders if name not in links and _searched(name))
        found += [Path(root, name) for name in files if name.endswith(".ipynb") and _searched(name)]
        found += [Path(root, name) for name in links if _searched(name)]
    return sorted(found)


def _searched(name: str) -> bool:
    """Whether a search for notebooks looks at the file or folder `name` (hidden ones it skips)."""
    return name not in _SKIPPED_FOLDERS and not name.startswith(".")


def _safe_id(text: str) -> str:
    """A name that is safe as one folder name in --out: _safe_id("Zoë O'Neil") -> 'Zoë_O_Neil'.
    It never names the batch's own file there, in any case (macOS's disks ignore case):
    _safe_id("Grades.csv") -> 'Grades.csv_'."""
    cleaned = re.sub(r"[^\w.@+-]", "_", text).strip(".") or "submission"
    return f"{cleaned}_" if cleaned.lower() == GRADES_CSV else cleaned


def _path_ids(paths: list[Path]) -> list[str]:
    """Ids for notebooks outside nbgrader's layout: each notebook's name, or, when another
    notebook has the same name, its folder's name (as many folders up as it takes):

    _path_ids([Path("alice.ipynb"), Path("bob.ipynb")]) -> ["alice", "bob"]
    _path_ids([Path("x/alice/bpe.ipynb"), Path("y/bob/bpe.ipynb")]) -> ["alice", "bob"]
    _path_ids([Path("a/x/bpe.ipynb"), Path("b/x/bpe.ipynb")]) -> ["a-x", "b-x"]
    """
    folders = [Path(os.path.abspath(path)).parent.parts[1:] for path in paths]  # not resolve(): no links followed

    def at_depth(index: int, depth: int) -> str:
        return paths[index].stem if depth == 0 else "-".join(folders[index][-depth:])

    ids = []
    for index, parts in enumerate(folders):
        for depth in range(len(parts) + 1):
            candidate = at_depth(index, depth)
            if sum(at_depth(other, depth) == candidate for other in range(len(paths))) == 1:
                break
        else:  # the same file given twice: find_submissions reports the two as colliding
            candidate = paths[index].stem
        ids.append(candidate)
    return ids


def choose_notebook(candidates: list[Path], name: str) -> tuple[Path, list[Path]]:
    """(the submission, the extra notebooks) among one student's notebooks: the one called
    `name`, else the only one, else the first whose name starts like it ("bpe (1).ipynb"),
    else the first."""
    for wanted in (
        [path for path in candidates if path.name == name],
        candidates if len(candidates) == 1 else [],
        [path for path in candidates if path.name.startswith(Path(name).stem)],
        candidates,
    ):
        if wanted:
            return wanted[0], [path for path in candidates if path != wanted[0]]
    raise ValueError("no notebooks to choose from")


def _in_folder(assignment: str, folder: Path) -> tuple[list[Submission], list[Path]]:
    """(submissions in nbgrader's layout under `folder`, notebooks outside any layout).

    A notebook at <student>/<assignment>/<name> is a candidate of that student. Once `folder`
    has that layout, every other notebook inside a student's folder is one of the student's
    extra files, and a notebook beside the students' folders gets a row that says it is not graded;
    only a folder with no layout at all gives notebooks ids of their own (the second list).
    """
    by_student: dict[str, list[Path]] = defaultdict(list)
    misplaced: dict[str, list[Path]] = defaultdict(list)  # student -> notebooks at another depth
    other_assignments: dict[str, list[Path]] = defaultdict(list)
    loose = []
    for path in notebooks_in(folder):
        parts = path.relative_to(folder).parts
        if len(parts) == 3 and parts[1] == assignment:
            by_student[parts[0]].append(path)
        elif len(parts) == 3:
            other_assignments[parts[1]].append(path)
        elif len(parts) > 1:
            misplaced[parts[0]].append(path)
        else:
            loose.append(path)
    if not by_student and not other_assignments:
        return [], loose + [path for paths in misplaced.values() for path in paths]
    if other_assignments and not by_student:
        names = printable(", ".join(sorted(other_assignments)))
        print(f"warning: {folder} holds submissions of {names}, not of {assignment}: each is graded as "
              f"{assignment} and its results say so", file=sys.stderr)
        for paths in other_assignments.values():
            for path in paths:
                by_student[path.relative_to(folder).parts[0]].append(path)
    beside = []
    for path in loose:
        if path.is_symlink():  # a link in place of a student's folder: its row says it is refused
            by_student[path.name].append(path)
            continue
        problem = (f"{path.name} is not in a student's folder (<student>/{assignment}/"
                   f"{notebook_for(assignment)}): not graded")
        beside.append(Submission(path.stem, path, None, (), problem, "misplaced"))
    submissions = []
    for student in sorted(by_student.keys() | misplaced.keys()):
        if student in by_student:
            chosen, extra = choose_notebook(by_student[student], notebook_for(assignment))
            submissions.append(Submission(student, chosen, student, tuple(extra + misplaced[student])))
            continue
        expected = folder / student / assignment / notebook_for(assignment)
        found = ", ".join(str(path.relative_to(folder / student)) for path in misplaced[student])
        problem = (f"no notebook at {student}/{assignment}/{notebook_for(assignment)}; found {found}, "
                   "which is not where a submission of this assignment goes")
        submissions.append(Submission(student, expected, student, tuple(misplaced[student]), problem, "misplaced"))
    return submissions + beside, []


def find_submissions(assignment: str, paths: Sequence[str | Path]) -> list[Submission]:
    """The notebooks to grade, in a stable order, each with an id (see the module docstring).

    Raises UsageError for a path that does not exist or when there is nothing to grade at all.
    """
    in_layout: list[Submission] = []
    outside: list[Path] = []
    for given in map(Path, paths):
        if not given.exists():
            raise UsageError(f"{given}: no such file or folder")
        if not given.is_dir():
            parts = given.resolve().parts  # a notebook given directly in nbgrader's own folder
            if len(parts) >= 4 and parts[-4] == "submitted" and parts[-2] == assignment:
                in_layout.append(Submission(parts[-3], given, parts[-3]))
            else:
                outside.append(given)
            continue
        found, loose = _in_folder(assignment, given)
        if not found and not loose:
            print(f"warning: no notebooks (.ipynb) found in {given}", file=sys.stderr)
        in_layout += found
        outside += loose
    if not in_layout and not outside:
        raise UsageError("no notebooks to grade: give notebooks, or folders that contain them")
    submissions = in_layout + [Submission(name, path) for name, path in zip(_path_ids(outside), outside)]
    for submission in submissions:
        if submission.extra:
            extra = ", ".join(_shown(path, submission) for path in submission.extra)
            print(printable(f"warning: {submission.path.parent} holds other notebooks, not graded: {extra}"),
                  file=sys.stderr)
    return _without_collisions(submissions)


def _shown(path: Path, submission: Submission) -> str:
    """An extra notebook's path, relative to the submission's folder when it lies inside it."""
    try:
        return str(path.relative_to(submission.path.parent))
    except ValueError:
        return str(path)


def _without_collisions(submissions: list[Submission]) -> list[Submission]:
    """The submissions with safe ids; those that share an id (in any case) are not graded."""
    ids = [_safe_id(submission.id) for submission in submissions]
    counts = Counter(name.lower() for name in ids)
    checked = []
    for name, submission in zip(ids, submissions):
        if counts[name.lower()] == 1:
            checked.append(dataclasses.replace(submission, id=name))
            continue
        others = [str(other.path) for other_name, other in zip(ids, submissions)
                  if other_name.lower() == name.lower() and other is not submission]
        problem = (f"not graded: the submission {submission.path} and {', '.join(others)} would share the "
                   f"result folder {name!r}; rename one of them, then grade again")
        print(printable(f"error: {problem}"), file=sys.stderr)
        checked.append(dataclasses.replace(submission, id=name, problem=problem, status=ID_COLLISION))
    return checked


@dataclass(frozen=True)
class GradingOptions:
    """What every submission of a batch is graded with (picklable, for the worker processes)."""

    exercise: str
    timeout: float
    use_bubblewrap: bool | None


def grade_one(options: GradingOptions, submission: Submission) -> SubmissionReport:
    """Grade one submission; never raises for anything the submission does. grade_submission
    already turns that into a report; this also keeps a bug of the grader from ending the batch."""
    if submission.problem is not None:
        return ungraded_report(options.exercise, submission.path, submission.problem,
                               student=submission.student, status=submission.status)
    try:
        report = grade_submission(options.exercise, submission.path, student=submission.student,
                                  timeout=options.timeout, use_bubblewrap=options.use_bubblewrap)
    except SetupError:  # the grader lacks a file: no submission can be graded, none scores 0 for it
        raise
    except Exception as err:  # noqa: BLE001 - a grader bug: this submission scores 0, the batch goes on
        print(printable(f"error: the grader failed on {submission.path}: {type(err).__name__}: {err}"), file=sys.stderr)
        report = ungraded_report(
            options.exercise, submission.path,
            f"the grader failed on this submission ({type(err).__name__}); ask your instructor to look at it",
            student=submission.student, status="grader error",
        )
    if submission.extra:
        report.problems.append("Other notebooks in your folder were not graded: "
                               + ", ".join(_shown(path, submission) for path in submission.extra))
    if report.status == "wrong assignment":
        print(printable(f"warning: {submission.path}: {report.problems[0]}"), file=sys.stderr)
    return report


def grade_all(options: GradingOptions, submissions: Sequence[Submission], jobs: int) -> Iterator[SubmissionReport]:
    """Reports in the order of `submissions`, graded `jobs` at a time.

    Workers are processes, not threads: each submission already runs in its own sandboxed child,
    but the trusted side redirects sys.stdout while it computes references, which threads would
    share, and each worker keeps its own cache of those references. They are started fresh
    ("spawn"), not forked: a process forked after torch has started its thread pool can hang in
    its first parallel operation. A worker that dies (the out-of-memory killer) costs only the
    submission it was grading (see `_graded_in_pool`).
    """
    if jobs == 1 or len(submissions) == 1:
        yield from (grade_one(options, submission) for submission in submissions)
        return
    waiting = deque(range(len(submissions)))
    reports: dict[int, SubmissionReport] = {}
    next_index = 0
    while waiting:  # one pool, then a fresh one for what is left each time a worker dies
        for index, report in _graded_in_pool(options, submissions, waiting, jobs):
            reports[index] = report
            while next_index in reports:
                yield reports.pop(next_index)
                next_index += 1


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _graded_in_pool(options: GradingOptions, submissions: Sequence[Submission], waiting: deque[int],
                    jobs: int) -> Iterator[tuple[int, SubmissionReport]]:
    """(index, report) for the submissions taken from `waiting`, graded by `jobs` workers, until
    none is left or a worker dies.

    A dead worker breaks the whole pool, and every submission then in flight fails with it, so at
    most `jobs` are in flight: those are graded again, each alone in a fresh process, and the
    one whose process dies again gets a "killed" report. The rest stay in `waiting`, for a fresh
    pool.
    """
    in_flight: dict[Future, int] = {}
    suspects: list[int] = []
    with _pool(min(jobs, len(waiting))) as pool:
        while (waiting or in_flight) and not suspects:
            while waiting and len(in_flight) < jobs:
                index = waiting.popleft()
                in_flight[pool.submit(grade_one, options, submissions[index])] = index
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            if any(_broke(future) for future in finished):
                finished, _ = wait(in_flight)  # the pool is broken: every future ends now
            for future in finished:
                index = in_flight.pop(future)
                if _broke(future):
                    suspects.append(index)
                else:
                    yield index, future.result()
    for index in suspects:
        yield index, _graded_alone(options, submissions[index])


def _broke(future: Future) -> bool:
    """Whether `future` failed because its pool's worker process died."""
    return isinstance(future.exception(), BrokenProcessPool)


def _graded_alone(options: GradingOptions, submission: Submission) -> SubmissionReport:
    """`submission` graded in a process of its own; a "killed" report if that process dies too."""
    with _pool(1) as pool:
        try:
            return pool.submit(grade_one, options, submission).result()
        except BrokenProcessPool:
            print(printable(f"error: the process grading {submission.path} was killed, twice"), file=sys.stderr)
    return ungraded_report(
        options.exercise, submission.path,
        "the process grading this submission was killed (by the system, most likely for using too much "
        "memory); ask your instructor to look at it",
        student=submission.student, status="killed",
    )


def positive_seconds(text: str) -> float:
    """An option's value as a finite number of seconds > 0, or argparse's error."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value
