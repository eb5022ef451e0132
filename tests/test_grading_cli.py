"""The batch grader's command line, `python -m grading grade`, run as a learner's
instructor runs it: exit codes, the Gradescope results.json of each submission, grades.csv,
JSON lines, parallel grading, and a batch that holds hostile and broken notebooks.

References: the expected scores are the points the notebook's check cells state (3, 5, 7, 6, 5;
26 in all) for the tasks each made-up submission solves; Gradescope's results format is
https://gradescope-autograders.readthedocs.io/en/latest/specs/ (score, execution_time, output,
tests with name, score, max_score, status, output, visibility).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from submission_notebooks import (
    ALL,
    BPE,
    ENCODE_IGNORING_MERGES,
    RELEASE,
    SOLUTION,
    TASK_POINTS,
    points_of,
    write_submission,
)

from grading import batch as batches
from grading import results

REPO = Path(__file__).resolve().parent.parent
TEST_FIELDS = {"name", "score", "max_score", "status", "output", "visibility"}
# 22 of 26: every task but encode, of which only the check without merges (and the one of an
# empty text and one character, where there is nothing to merge) pass.
PARTIAL_SCORE = points_of(ALL - {"encode"}) + 2
TOTAL = BPE.max_score


def grade(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m grading grade ...` in a fresh interpreter, as an instructor runs it."""
    return subprocess.run(
        [sys.executable, "-m", "grading", "grade", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd or REPO,  # `python -m` imports course_lib from here first
    )


def digest(folder: Path) -> dict[str, str]:
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()
    }


def results_of(out: Path, submission_id: str) -> dict:
    return json.loads((out / submission_id / "results.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One batch of six, graded with --jobs 2 --out DIR --format jsonl: the solution, the release,
    a partly correct one, one whose decode never returns, one that kills its interpreter while
    loading, and one that is not JSON."""
    root = tmp_path_factory.mktemp("batch")
    subs = root / "submissions"
    write_submission(subs / "solved.ipynb", ALL)
    write_submission(subs / "release.ipynb")
    write_submission(subs / "partial.ipynb", ALL, {"encode": ENCODE_IGNORING_MERGES})
    write_submission(subs / "loops.ipynb", ALL, {"decode": "def decode(ids, merges):\n    while True:\n        pass\n"})
    write_submission(subs / "exits.ipynb", ALL, {"get_pair_counts": "import os\nos._exit(0)\n"})
    (subs / "malformed.ipynb").write_text('{"cells": [ {"cell_type": "code", "source": "def merge(', encoding="utf-8")
    before = digest(subs)
    out = root / "out"
    done = grade("01_bpe", str(subs), "--out", str(out), "--jobs", "2", "--timeout", "2", "--format", "jsonl")
    return {"done": done, "out": out, "subs": subs, "before": before}


# ---- exit status and misuse ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["02_nonexistent", "exercises"], "unknown exercise '02_nonexistent'"),
        (["01_bpe", "no/such/notebook.ipynb"], "no/such/notebook.ipynb: no such file or folder"),
        (["01_bpe", "exercises", "--jobs", "0"], "--jobs: must be a whole number of at least 1, got '0'"),
        (["01_bpe", "exercises", "--timeout", "-1"], "--timeout: must be a positive number of seconds, got '-1'"),
        (["01_bpe", "exercises", "--timeout", "inf"], "--timeout: must be a positive number of seconds, got 'inf'"),
        (["01_bpe", "exercises", "--format", "xml"], "invalid choice: 'xml'"),
        (["01_bpe", "course_lib/tokenization"], "no notebooks to grade"),
    ],
)
def test_misuse_exits_2_with_a_message(args: list[str], message: str) -> None:
    done = grade(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_graded_batch_exits_0_even_when_every_score_is_0(tmp_path: Path) -> None:
    done = grade("01_bpe", str(RELEASE), "--out", str(tmp_path), "--sandbox", "rlimits")
    assert done.returncode == 0, done.stderr
    assert results_of(tmp_path, "bpe")["score"] == 0
    assert "Isolation: rlimits only" in results_of(tmp_path, "bpe")["output"]  # as asked, and said
    # The table: a header with the tasks, the row of the submission, the total.
    header, row = done.stdout.splitlines()[:2]
    assert header.split() == ["submission", *TASK_POINTS, "score"]
    assert row.split() == ["bpe", *(f"0/{points}" for points in TASK_POINTS.values()), f"0/{TOTAL}"]


def test_batch_exits_0(batch: dict) -> None:
    assert batch["done"].returncode == 0, batch["done"].stderr


# ---- results.json --------------------------------------------------------------------------


def test_results_json_follows_gradescopes_format(batch: dict) -> None:
    for submission_id in ["solved", "release", "partial", "loops", "exits", "malformed"]:
        data = results_of(batch["out"], submission_id)
        assert {"score", "execution_time", "output", "tests"} <= data.keys()
        assert isinstance(data["execution_time"], (int, float)) and data["execution_time"] >= 0
        assert "Isolation:" in data["output"]  # the isolation used, or the fallback, is stated
        assert len(data["tests"]) >= 15
        for test in data["tests"]:
            assert test.keys() == TEST_FIELDS
            assert test["visibility"] in {"visible", "after_published"}
            assert test["status"] == ("passed" if test["score"] == test["max_score"] else "failed")
            assert 0 <= test["score"] <= test["max_score"] and isinstance(test["output"], str)
        assert data["score"] == sum(test["score"] for test in data["tests"])
        assert sum(test["max_score"] for test in data["tests"]) == TOTAL
        assert {test["visibility"] for test in data["tests"]} == {"visible", "after_published"}


def test_scores_of_the_batch(batch: dict) -> None:
    scores = {
        sid: results_of(batch["out"], sid)["score"] for sid in ["solved", "release", "partial", "exits", "malformed"]
    }
    assert scores == {"solved": TOTAL, "release": 0, "partial": PARTIAL_SCORE, "exits": 0, "malformed": 0}


def test_hostile_submissions_harm_only_themselves(batch: dict) -> None:
    # A decode that never returns costs decode's points and nothing else, in its own submission.
    loops = results_of(batch["out"], "loops")
    assert loops["score"] == TOTAL - TASK_POINTS["decode"]
    assert all(test["status"] == "failed" for test in loops["tests"] if test["name"].startswith("decode"))
    assert results_of(batch["out"], "solved")["score"] == TOTAL  # graded next to both in the same batch


def test_malformed_notebook_gets_0_and_says_why(batch: dict) -> None:
    data = results_of(batch["out"], "malformed")
    assert data["score"] == 0
    assert "malformed.ipynb" in data["output"] and "notebook" in data["output"]


def test_hidden_checks_never_show_expected_values(batch: dict) -> None:
    data = results_of(batch["out"], "partial")
    hidden_failures = [test for test in data["tests"] if test["visibility"] == "after_published" and test["status"] == "failed"]
    assert len(hidden_failures) == 2  # encode's two hidden checks
    for test in hidden_failures:
        assert "expected" not in test["output"].lower()
        assert re.search(r"\d+, \d+, \d+", test["output"]) is None, test["output"]  # no list of ids
    # A visible check of the same submission does show both values.
    visible = [test for test in data["tests"] if test["visibility"] == "visible" and test["status"] == "failed"]
    assert visible and all("expected" in test["output"] for test in visible)


def test_submissions_are_never_modified_and_no_temporary_files_remain(batch: dict) -> None:
    assert digest(batch["subs"]) == batch["before"]
    written = sorted(path.relative_to(batch["out"]).as_posix() for path in batch["out"].rglob("*") if path.is_file())
    ids = ["exits", "loops", "malformed", "partial", "release", "solved"]
    assert written == sorted(["grades.csv", *(f"{sid}/results.json" for sid in ids)])


# ---- grades.csv and JSON lines ----------------------------------------------------------------


def test_grades_csv_has_one_row_per_submission_and_a_column_per_task(batch: dict) -> None:
    with open(batch["out"] / "grades.csv", newline="", encoding="utf-8") as file:
        rows = {row["student"]: row for row in csv.DictReader(file)}
    assert set(rows) == {"solved", "release", "partial", "loops", "exits", "malformed"}
    assert list(rows["solved"]) == ["student", "submission", "status", "score", "max_score", *TASK_POINTS]
    assert {task: float(rows["solved"][task]) for task in TASK_POINTS} == TASK_POINTS
    assert float(rows["partial"]["encode"]) == 2 and float(rows["partial"]["score"]) == PARTIAL_SCORE
    # An unreadable notebook's 0 is no verdict on its code, and the status column says so.
    assert {student: row["status"] for student, row in rows.items()} == {
        "solved": "graded", "release": "graded", "partial": "graded", "loops": "graded", "exits": "crashed",
        "malformed": "unreadable"}
    for row in rows.values():
        assert float(row["max_score"]) == TOTAL
        assert sum(float(row[task]) for task in TASK_POINTS) == float(row["score"])
        assert Path(row["submission"]).name == f"{row['student']}.ipynb"


def test_jsonl_prints_one_object_per_submission(batch: dict) -> None:
    lines = [json.loads(line) for line in batch["done"].stdout.splitlines()]
    assert [line["id"] for line in lines] == ["exits", "loops", "malformed", "partial", "release", "solved"]
    for line in lines:
        assert {"submission", "score", "max_score", "tests"} <= line.keys()
        assert line["score"] == results_of(batch["out"], line["id"])["score"]
        assert line["tests"] == results_of(batch["out"], line["id"])["tests"]


def test_two_jobs_give_the_same_results_as_one(batch: dict, tmp_path: Path) -> None:
    names = ["solved", "partial", "release"]
    done = grade(
        "01_bpe", *(str(batch["subs"] / f"{name}.ipynb") for name in names), "--out", str(tmp_path), "--timeout", "2"
    )
    assert done.returncode == 0, done.stderr
    for name in names:
        one, two = results_of(tmp_path, name), results_of(batch["out"], name)
        assert (one["score"], one["tests"]) == (two["score"], two["tests"])


# ---- finding submissions (no grading) -------------------------------------------------------------


def test_nbgrader_layout_gives_student_ids_and_skips_other_assignments(tmp_path: Path) -> None:
    submitted = tmp_path / "submitted"
    for student in ["alice", "bob"]:
        write_submission(submitted / student / "01_bpe" / "bpe.ipynb")
    write_submission(submitted / "alice" / "02_linear" / "linear.ipynb")
    write_submission(submitted / "alice" / "01_bpe" / ".ipynb_checkpoints" / "bpe-checkpoint.ipynb")
    found = batches.find_submissions("01_bpe", [submitted])
    assert [(s.id, s.student, s.path.relative_to(submitted).as_posix()) for s in found] == [
        ("alice", "alice", "alice/01_bpe/bpe.ipynb"),
        ("bob", "bob", "bob/01_bpe/bpe.ipynb"),
    ]
    # A notebook given directly in that layout is the student's too.
    (direct,) = batches.find_submissions("01_bpe", [submitted / "bob" / "01_bpe" / "bpe.ipynb"])
    assert (direct.id, direct.student) == ("bob", "bob")


def test_ids_outside_nbgrader_layout_come_from_names_then_folders(tmp_path: Path) -> None:
    for path in ["a/alice.ipynb", "a/bob.ipynb", "x/carol/bpe.ipynb", "y/dave/bpe.ipynb"]:
        write_submission(tmp_path / path)
    found = batches.find_submissions("01_bpe", [tmp_path / "a", tmp_path / "x", tmp_path / "y"])
    assert [s.id for s in found] == ["alice", "bob", "carol", "dave"]
    assert [s.student for s in found] == [None] * 4
    assert [s.id for s in batches.find_submissions("01_bpe", [SOLUTION, RELEASE])] == [
        "solutions-01_bpe",
        "exercises-01_bpe",
    ]


# ---- atomic writes -------------------------------------------------------------------------------


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "alice" / "results.json"
    results.write_json(target, {"score": 1})

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        results.write_json(target, {"score": 2})
    assert json.loads(target.read_text()) == {"score": 1}
    assert [path.name for path in target.parent.iterdir()] == ["results.json"]


def test_a_grader_bug_on_one_submission_scores_it_0_and_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug in the grader")

    monkeypatch.setattr(batches, "grade_submission", broken)
    options = batches.GradingOptions("01_bpe", timeout=1.0, use_bubblewrap=None)
    report = batches.grade_one(options, batches.Submission("ada", RELEASE, "ada"))
    assert (report.score, report.max_score, report.student, report.status) == (0, TOTAL, "ada", "grader error")
    assert "the grader failed on this submission (RuntimeError)" in report.problems[0]
    assert "a bug in the grader" in capsys.readouterr().err  # the instructor sees the cause


# ---- what instructors run into ------------------------------------------------------------------


def test_extra_notebooks_in_a_students_folder_are_reported_not_graded(tmp_path: Path) -> None:
    folder = tmp_path / "submitted" / "zed" / "01_bpe"
    write_submission(folder / "bpe.ipynb", ALL)
    write_submission(folder / "bpe (1).ipynb")
    (found,) = batches.find_submissions("01_bpe", [tmp_path / "submitted"])
    assert (found.id, found.path.name, [path.name for path in found.extra]) == ("zed", "bpe.ipynb", ["bpe (1).ipynb"])
    done = grade("01_bpe", str(tmp_path / "submitted"), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "holds other notebooks, not graded: bpe (1).ipynb" in done.stderr
    data = results_of(tmp_path / "out", "zed")
    assert data["score"] == TOTAL and "Other notebooks in your folder were not graded: bpe (1).ipynb" in data["output"]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["grades.csv", "zed"]


def test_another_assignments_notebooks_are_graded_with_a_warning(tmp_path: Path) -> None:
    write_submission(tmp_path / "submitted" / "ada" / "01_bpe" / "bpe.ipynb", ALL)
    done = grade("02_linear", str(tmp_path / "submitted"), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "holds submissions of 01_bpe, not of 02_linear" in done.stderr
    assert "looks like one of 01_bpe" in done.stderr
    with open(tmp_path / "out" / "grades.csv", newline="", encoding="utf-8") as file:
        (row,) = csv.DictReader(file)
    assert (row["status"], float(row["score"])) == ("wrong assignment", 0)
    assert "looks like one of 01_bpe" in results_of(tmp_path / "out", "ada")["output"]


def test_verbose_table_prints_the_failed_checks_messages(tmp_path: Path) -> None:
    notebook = write_submission(tmp_path / "ada.ipynb", ALL, {"encode": ENCODE_IGNORING_MERGES})
    quiet, verbose = grade("01_bpe", str(notebook)), grade("01_bpe", str(notebook), "-v")
    assert "Called encode(" not in quiet.stdout
    assert "ada: FAIL encode applies the earliest learned merge first (0/1)" in verbose.stdout
    assert "    Called encode('abc', [(98, 99), (97, 98)]):" in verbose.stdout
    assert "[hidden]" not in verbose.stdout and "the result differs from the reference" in verbose.stdout


def test_a_grader_without_its_downloads_stops_and_says_what_to_set(tmp_path: Path) -> None:
    # No Tiny Shakespeare, no tiktoken cache and no way out (a proxy that refuses): no learner may
    # score 0 for the grader's missing file.
    env = {**os.environ, "COURSE_LIB_DATA": str(tmp_path), "COURSE_LIB_CACHE": str(tmp_path / "cache"),
           "TIKTOKEN_CACHE_DIR": str(tmp_path / "tiktoken"), "https_proxy": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "grading", "grade", "01_bpe", str(SOLUTION), "--out", str(tmp_path / "out")],
                          check=False, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert "the grader cannot compute its expected values, so nothing was graded" in done.stderr
    assert "COURSE_LIB_DATA" in done.stderr and "TIKTOKEN_CACHE_DIR" in done.stderr
    assert not (tmp_path / "out").exists()
