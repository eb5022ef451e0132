"""Write grades down: Gradescope's results.json, one JSON line per submission, a CSV for the batch.

A `SubmissionReport` (from grading.grader) becomes, for Gradescope,

    {"score": 7.0, "execution_time": 2.31,
     "output": "Graded 01_bpe in 2.3 s. Isolation: bubblewrap (as uid 231547). Hidden inputs: ...",
     "tests": [{"name": "merge replaces non-overlapping pairs", "score": 1.0, "max_score": 1.0,
                "status": "passed", "output": "Called merge([5, 6, 6, 7, 9], (6, 7), 99): correct.",
                "visibility": "visible"}, ...]}

A hidden check's "output" is the grader's message for it, which never quotes the expected value
(checks.judge writes it so). Its Gradescope visibility is "after_published": learners see its
name, pass/fail and score once the instructor publishes the grades, as the course promises
(Gradescope's own "hidden" would show them nothing of it but the total).

Everything written is ASCII-safe: a learner's process can send back, and a folder's name can hold,
text that no encoder accepts (a lone surrogate such as "\\ud800", or "caf\\udce9" for a folder
name in Latin-1). `encodable` writes those characters as escapes, and JSON escapes all that is not
ASCII, so one submission's text can never stop the batch's files from being written.

Every file is written atomically: into a temporary file in the same folder, then renamed over
the target with os.replace, so a reader (Gradescope, a spreadsheet, an interrupted batch) sees
the old file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only read here: results.py writes reports down, whoever made them
    from grading.grader import SubmissionReport

# The batch's own file in --out, beside one folder per submission (so no submission's id may be it).
GRADES_CSV = "grades.csv"


def write_atomic(path: str | Path, content: str | bytes) -> None:
    """Write `content` (text as UTF-8, or bytes) to `path` so that `path` is never seen half-written.

    write_atomic("out/alice/results.json", "{}") creates out/alice/ if needed; a crash before the
    rename leaves no temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content.encode("utf-8") if isinstance(content, str) else content)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it owner-only; results are for others to read
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def encodable(text: str) -> str:
    r"""`text` with every lone surrogate written as an escape, so that it encodes to UTF-8:
    encodable("caf\udce9") -> "caf\\udce9"; any other text comes back as it was."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


# Unicode categories a terminal may act on instead of showing: control characters (escape
# sequences, carriage return, C1's CSI), format characters (bidirectional overrides), lone
# surrogates, line and paragraph separators.
_UNPRINTABLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def printable(text: str) -> str:
    r"""`text` with every character a terminal could act on written as its escape, so that a
    message cannot clear the screen or draw a row of its own: printable("\x1b[2J") -> "\\x1b[2J"."""
    return "".join(ascii(char)[1:-1] if unicodedata.category(char) in _UNPRINTABLE else char for char in text)


def _encodable_data(data: Any) -> Any:
    """`data` (plain JSON types) with `encodable` applied to every string in it, keys included."""
    if isinstance(data, str):
        return encodable(data)
    if isinstance(data, dict):
        return {_encodable_data(key): _encodable_data(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_encodable_data(value) for value in data]
    return data


def to_json(data: Any, indent: int | None = None) -> str:
    """`data` as ASCII JSON that any parser accepts (no lone surrogates, even escaped)."""
    return json.dumps(_encodable_data(data), indent=indent, ensure_ascii=True)


def write_json(path: str | Path, data: Any) -> None:
    """`data` as indented JSON at `path` (see `to_json`), written atomically."""
    write_atomic(path, to_json(data, indent=2) + "\n")


def summary_output(report: SubmissionReport) -> str:
    """The submission-level text: how long, which isolation, and what went wrong with the notebook.

    "Graded 01_bpe in 2.3 s. Isolation: bubblewrap (as uid 231547). Hidden inputs: seeds derived
    from the course secret.\nProblems with your notebook:\n- ..."
    """
    lines = [f"Graded {report.exercise} in {report.execution_time:.1f} s. Isolation: {report.isolation}."
             f" Hidden inputs: {report.hidden_inputs}."]
    if report.problems:
        lines.append("Problems with your notebook:")
        lines.extend(f"- {problem}" for problem in report.problems)
    return "\n".join(lines)


# The course's visibility -> Gradescope's word for it (see the module docstring).
GRADESCOPE_VISIBILITY = {"visible": "visible", "hidden": "after_published"}


def gradescope_tests(report: SubmissionReport) -> list[dict]:
    """One Gradescope test per check, in the exercise's order."""
    return [
        {
            "name": result.name,
            "score": float(result.score),
            "max_score": float(result.points),
            "status": "passed" if result.passed else "failed",
            "output": result.message,
            "visibility": GRADESCOPE_VISIBILITY[result.visibility],
        }
        for result in report.results
    ]


def gradescope_results(report: SubmissionReport) -> dict:
    """The content of Gradescope's results.json for one submission (see the module docstring)."""
    return {
        "score": float(report.score),
        "execution_time": round(report.execution_time, 2),
        "output": summary_output(report),
        "tests": gradescope_tests(report),
    }


def json_line(report: SubmissionReport, submission_id: str, student: str | None) -> dict:
    """What `--format jsonl` prints for one submission: its id, path, student, scores and tests."""
    return {
        "id": submission_id,
        "submission": report.submission,
        "student": student,
        "exercise": report.exercise,
        "score": float(report.score),
        "max_score": float(report.max_score),
        "execution_time": round(report.execution_time, 2),
        "isolation": report.isolation,
        "hidden_inputs": report.hidden_inputs,
        "status": report.status,
        "problems": list(report.problems),
        "tests": gradescope_tests(report),
    }


def task_scores(report: SubmissionReport, tasks: Sequence[str]) -> dict[str, tuple[float, float]]:
    """(points earned, points available) per task: task_scores(report, ["merge"]) -> {"merge": (3.0, 4.0)}."""
    scores = dict.fromkeys(tasks, (0.0, 0.0))
    for result in report.results:
        earned, available = scores.get(result.task, (0.0, 0.0))
        scores[result.task] = (earned + float(result.score), available + float(result.points))
    return scores


# What a spreadsheet reads as the start of a formula (and tab and carriage return, which some
# read past to one): a cell that starts so gets a quote in front, which makes it plain text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_text(text: str) -> str:
    """`text` as a CSV cell no spreadsheet runs: _spreadsheet_text("=HYPERLINK(...)") -> "'=HYPERLINK(...)"."""
    text = encodable(text)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def _number(value: float) -> str:
    """22.0 -> '22', 2.5 -> '2.5': what a spreadsheet and a reader expect."""
    return f"{value:g}"


def grades_csv(graded: Sequence[tuple[str, SubmissionReport]], tasks: Sequence[str]) -> str:
    """The batch as CSV: one row per (submission id, report), one column per task.

    student,submission,status,score,max_score,get_pair_counts,merge,...
    alice,submitted/alice/01_bpe/bpe.ipynb,graded,22,22,3,4,...

    status tells an honest score ("graded") from a 0 that is no verdict on the learner's code
    ("unreadable", "crashed", "wrong assignment", "grader error", "killed", "no notebook"). A text cell that
    a spreadsheet would read as a formula ("=...", "+...", "-...", "@...") starts with a quote.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", "submission", "status", "score", "max_score", *tasks])
    for submission_id, report in graded:
        per_task = task_scores(report, tasks)
        writer.writerow(
            [_spreadsheet_text(cell) for cell in [submission_id, report.submission, report.status]]
            + [_number(report.score), _number(report.max_score)]
            + [_number(per_task[task][0]) for task in tasks]
        )
    return buffer.getvalue()
