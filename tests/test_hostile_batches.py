"""One hostile submission never ends, hangs or corrupts a batch, and gains nothing: what the
trusted side reads from the filesystem and from the learner's process (names, messages,
notebook files) is checked before it is written down or printed.

Each case is a batch of `python -m grading grade` run as an instructor runs it, with an honest
submission beside the hostile one: the honest one must still get its full 26 points and its
results, whatever the other did. References: the points the notebook's check cells state
(3, 5, 7, 6, 5; 26 in all), and the formats of JSON (RFC 8259) and CSV (RFC 4180).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from submission_notebooks import ALL, BPE, SOLUTION, TASK_POINTS, write_submission

from grading import batch as batches

REPO = Path(__file__).resolve().parent.parent
TOTAL = BPE.max_score
GRADE_ONE = batches.grade_one  # as it is before any test replaces it


def grade(*args: str, limit: float = 300) -> subprocess.CompletedProcess:
    """`python -m grading grade ...` in a fresh interpreter, stopped after `limit` seconds; output
    as bytes, as the terminal gets it."""
    return subprocess.run(
        [sys.executable, "-m", "grading", "grade", *args, "--timeout", "2"],
        check=False, capture_output=True, timeout=limit, cwd=REPO,
    )


def results_of(out: Path, submission_id: str) -> dict:
    """results.json of one submission, which must be ASCII (json escapes everything else)."""
    return json.loads((out / submission_id / "results.json").read_bytes().decode("ascii"))


def csv_rows(out: Path) -> dict[str, dict[str, str]]:
    """grades.csv by student id (the file must be ASCII too)."""
    text = (out / "grades.csv").read_bytes().decode("ascii")
    return {row["student"]: row for row in csv.DictReader(text.splitlines())}


# ---- text no encoder can write ---------------------------------------------------------------

# A decode cell that prints and raises a lone surrogate: valid in a Python str, not in UTF-8.
SURROGATE = {"decode": 'print("\\ud800")\nraise ValueError("\\ud800 and \\x1b[2J")\n'}


def test_a_lone_surrogate_in_a_message_costs_only_its_own_points(tmp_path: Path) -> None:
    write_submission(tmp_path / "in" / "lone.ipynb", ALL, SURROGATE)
    write_submission(tmp_path / "in" / "zed.ipynb", ALL)  # graded after it
    for output in (["--format", "table", "-v"], ["--format", "jsonl"]):
        out = tmp_path / output[1]
        done = grade("01_bpe", str(tmp_path / "in"), "--out", str(out), *output)
        assert done.returncode == 0, done.stderr
        lone = results_of(out, "lone")
        assert lone["score"] == TOTAL - TASK_POINTS["decode"]
        assert "\\ud800" in lone["output"]  # escaped, so the instructor still sees what it was
        assert results_of(out, "zed")["score"] == TOTAL
        assert {row: float(fields["score"]) for row, fields in csv_rows(out).items()} == {
            "lone": TOTAL - TASK_POINTS["decode"], "zed": TOTAL}
        done.stdout.decode("ascii" if output[1] == "jsonl" else "utf-8")
    lines = [json.loads(line) for line in done.stdout.decode("ascii").splitlines()]
    assert [(line["id"], line["score"]) for line in lines] == [("lone", TOTAL - TASK_POINTS["decode"]), ("zed", TOTAL)]


def test_a_folder_name_that_is_not_utf8_is_graded_and_written(tmp_path: Path) -> None:
    submitted = tmp_path / "submitted"
    latin1 = os.fsencode(submitted) + b"/caf\xe9"  # what unzipping a latin-1 zip makes
    os.makedirs(latin1 + b"/01_bpe")
    write_submission(Path(os.fsdecode(latin1 + b"/01_bpe/bpe.ipynb")), ALL)
    write_submission(submitted / "zed" / "01_bpe" / "bpe.ipynb", ALL)
    out = tmp_path / "out"
    for output in ("table", "jsonl"):
        done = grade("01_bpe", str(submitted), "--out", str(out), "--format", output)
        assert done.returncode == 0, done.stderr
        assert results_of(out, "caf_")["score"] == TOTAL and results_of(out, "zed")["score"] == TOTAL
        rows = csv_rows(out)
        assert set(rows) == {"caf_", "zed"} and "caf\\udce9" in rows["caf_"]["submission"]
    lines = [json.loads(line) for line in done.stdout.decode("ascii").splitlines()]
    assert [(line["id"], line["student"]) for line in lines] == [("caf_", "caf\\udce9"), ("zed", "zed")]


def test_an_output_that_cannot_be_written_costs_that_submission_only(tmp_path: Path) -> None:
    for name in ("ada", "zed"):
        write_submission(tmp_path / "in" / f"{name}.ipynb", ALL)
    out = tmp_path / "out"
    out.mkdir()
    (out / "ada").write_text("a file where ada's folder should be", encoding="utf-8")
    done = grade("01_bpe", str(tmp_path / "in"), "--out", str(out))
    assert done.returncode == 1  # the instructor must notice; the rest of the batch is written
    assert b"cannot write the results of ada" in done.stderr
    assert results_of(out, "zed")["score"] == TOTAL
    assert set(csv_rows(out)) == {"ada", "zed"}
    assert b"zed" in done.stdout


# ---- names that collide with the batch's own files -----------------------------------------------


def test_a_student_named_like_the_grades_file_gets_a_folder_of_its_own(tmp_path: Path) -> None:
    submitted = tmp_path / "submitted"
    for student in ("grades.csv", "zed"):
        write_submission(submitted / student / "01_bpe" / "bpe.ipynb", ALL)
    out = tmp_path / "out"
    done = grade("01_bpe", str(submitted), "--out", str(out), "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    assert (out / "grades.csv").is_file()
    scores = {row: float(fields["score"]) for row, fields in csv_rows(out).items()}
    assert scores == {"grades.csv_": TOTAL, "zed": TOTAL}
    assert results_of(out, "grades.csv_")["score"] == TOTAL
    lines = [json.loads(line) for line in done.stdout.decode("ascii").splitlines()]
    assert [(line["id"], line["student"]) for line in lines] == [("grades.csv_", "grades.csv"), ("zed", "zed")]


# ---- the layout decides ids, never a path the submission chose ----------------------------------------


def test_a_copy_of_another_students_folder_is_an_extra_file_not_that_student(tmp_path: Path) -> None:
    """aaron hands in a release and, inside his folder, a full-marks copy laid out as alice's;
    bea hands in only such a copy. Neither copy is graded, nor takes alice's id."""
    submitted = tmp_path / "submitted"
    write_submission(submitted / "alice" / "01_bpe" / "bpe.ipynb", ALL)
    write_submission(submitted / "aaron" / "01_bpe" / "bpe.ipynb")
    for student in ("aaron", "bea"):
        write_submission(submitted / student / "01_bpe" / "submitted" / "alice" / "01_bpe" / "bpe.ipynb", ALL)
    out = tmp_path / "out"
    done = grade("01_bpe", str(submitted), "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = csv_rows(out)
    assert sorted(rows) == ["aaron", "alice", "bea"]  # no alice-2
    assert (float(rows["alice"]["score"]), float(rows["aaron"]["score"]), float(rows["bea"]["score"])) == (TOTAL, 0, 0)
    assert results_of(out, "alice")["score"] == TOTAL
    assert "submitted/alice/01_bpe/bpe.ipynb" in results_of(out, "aaron")["output"]  # reported as his extra file
    assert rows["bea"]["status"] == "misplaced"
    assert "no notebook at bea/01_bpe/bpe.ipynb" in results_of(out, "bea")["output"]


def test_two_submissions_with_one_id_are_an_error_for_both_never_a_suffix(tmp_path: Path) -> None:
    submitted = tmp_path / "submitted"
    for student in ("a b", "a_b", "a_b-2", "zed"):
        write_submission(submitted / student / "01_bpe" / "bpe.ipynb", ALL)
    out = tmp_path / "out"
    done = grade("01_bpe", str(submitted), "--out", str(out))
    assert done.returncode == 1  # the instructor must rename one folder
    assert done.stderr.count(b"would share the result folder 'a_b'") == 2
    text = (out / "grades.csv").read_bytes().decode("ascii")
    rows = [(row["student"], row["status"], float(row["score"])) for row in csv.DictReader(text.splitlines())]
    assert sorted(rows) == [("a_b", "id collision", 0), ("a_b", "id collision", 0),
                            ("a_b-2", "graded", TOTAL), ("zed", "graded", TOTAL)]
    assert not (out / "a_b").exists()  # neither took the folder
    assert results_of(out, "a_b-2")["score"] == TOTAL


# ---- what is not a notebook file ---------------------------------------------------------------------


def unreadable_rows(out: Path) -> dict[str, str]:
    """The status of each row of grades.csv, and check every row but zed's scored 0."""
    rows = csv_rows(out)
    assert float(rows.pop("zed")["score"]) == TOTAL
    assert all(float(row["score"]) == 0 for row in rows.values())
    return {student: row["status"] for student, row in rows.items()}


def test_links_fifos_and_devices_are_refused_with_a_row_that_says_why(tmp_path: Path) -> None:
    submitted = tmp_path / "submitted"
    zed = write_submission(submitted / "zed" / "01_bpe" / "bpe.ipynb", ALL)
    targets = {"answers": SOLUTION, "copycat": zed, "zero": Path("/dev/zero")}
    for student, target in targets.items():
        (submitted / student / "01_bpe").mkdir(parents=True)
        (submitted / student / "01_bpe" / "bpe.ipynb").symlink_to(target)
    (submitted / "fifo" / "01_bpe").mkdir(parents=True)
    os.mkfifo(submitted / "fifo" / "01_bpe" / "bpe.ipynb")
    (submitted / "mirror").symlink_to(submitted / "zed", target_is_directory=True)
    out = tmp_path / "out"
    done = grade("01_bpe", str(submitted), "--out", str(out), limit=120)
    assert done.returncode == 0, done.stderr
    assert unreadable_rows(out) == dict.fromkeys(["answers", "copycat", "fifo", "mirror", "zero"], "unreadable")
    for student in ("answers", "copycat", "mirror", "zero"):
        assert "is a symbolic link, not a notebook file" in results_of(out, student)["output"]
    assert "is not a regular file (a FIFO)" in results_of(out, "fifo")["output"]


def test_a_fifo_or_a_device_given_directly_is_refused(tmp_path: Path) -> None:
    write_submission(tmp_path / "zed.ipynb", ALL)
    os.mkfifo(tmp_path / "fifo.ipynb")
    done = grade("01_bpe", str(tmp_path / "fifo.ipynb"), "/dev/zero", str(tmp_path / "zed.ipynb"),
                 "--out", str(tmp_path / "out"), limit=120)
    assert done.returncode == 0, done.stderr
    assert unreadable_rows(tmp_path / "out") == {"fifo": "unreadable", "zero": "unreadable"}
    assert "is not a regular file (a character device)" in results_of(tmp_path / "out", "zero")["output"]


def test_a_notebook_or_a_cell_too_large_scores_0_and_says_why(tmp_path: Path) -> None:
    submitted = tmp_path / "submitted"
    write_submission(submitted / "zed.ipynb", ALL)
    with open(write_submission(submitted / "big.ipynb", ALL), "a", encoding="utf-8") as file:
        file.write(" " * (20 * 2**20))  # still valid JSON, but over 20 MiB
    write_submission(submitted / "long.ipynb", ALL, {"decode": "#" * 2**20 + "\n"})
    out = tmp_path / "out"
    done = grade("01_bpe", str(submitted), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert unreadable_rows(out) == {"big": "unreadable", "long": "unreadable"}
    assert "more than the 20 MiB a notebook may have" in results_of(out, "big")["output"]
    assert "more than the 1 MiB a cell may have" in results_of(out, "long")["output"]


def test_a_notebook_with_a_byte_order_mark_is_read_like_any_other(tmp_path: Path) -> None:
    notebook = write_submission(tmp_path / "bom.ipynb", ALL)
    notebook.write_bytes(b"\xef\xbb\xbf" + notebook.read_bytes())  # as some Windows editors save it
    done = grade("01_bpe", str(notebook), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert results_of(tmp_path / "out", "bom")["score"] == TOTAL


# ---- what a spreadsheet or a terminal would act on ------------------------------------------------


def test_grades_csv_cells_cannot_start_a_formula(tmp_path: Path) -> None:
    submitted = tmp_path / "submitted"
    for student in ("@SUM(A1)", "-2+3", "+cmd", "zed"):
        write_submission(submitted / student / "01_bpe" / "bpe.ipynb", ALL)
    out = tmp_path / "out"
    done = grade("01_bpe", str(submitted), "--out", str(out))
    assert done.returncode == 0, done.stderr
    rows = csv_rows(out)
    assert set(rows) == {"'@SUM_A1_", "'-2+3", "'+cmd", "zed"}  # a quote makes each cell plain text
    assert all(float(row["score"]) == TOTAL for row in rows.values())
    assert results_of(out, "-2+3")["score"] == TOTAL  # the id itself is unchanged


# A decode whose exceptions clear the screen, go back to the line's start and draw a fake row.
TERMINAL_TRICKS = {"decode": 'def decode(ids, merges):\n    raise ValueError("\\x1b[2J\\rzed 26/26")\n'
                             'raise ValueError("\\x1b[H\\x9b2J\\u202efake")\n'}


def test_messages_cannot_drive_the_terminal(tmp_path: Path) -> None:
    write_submission(tmp_path / "in" / "tricks.ipynb", ALL, TERMINAL_TRICKS)
    done = grade("01_bpe", str(tmp_path / "in"), "-v")
    assert done.returncode == 0, done.stderr
    table = done.stdout.decode("utf-8")
    assert not any(character in table for character in "\x1b\r\x9b\u202e")
    assert "\\x1b[2J\\rzed 26/26" in table and "\\x1b[H\\x9b2J\\u202efake" in table  # shown, escaped
    rows = [line.split() for line in table.splitlines() if line.startswith(("tricks ", "zed "))]
    assert rows == [["tricks", "3/3", "5/5", "7/7", "6/6", "0/5", "21/26"]]


# ---- a worker that dies ----------------------------------------------------------------------------


def grade_or_die(options: batches.GradingOptions, submission: batches.Submission) -> object:
    """grade_one, except that the worker process grading "doomed" is killed (SIGKILL), as the
    out-of-memory killer kills a process: no exception, no clean-up, no result."""
    if submission.id == "doomed":
        os.kill(os.getpid(), signal.SIGKILL)
    return GRADE_ONE(options, submission)


def test_a_killed_worker_costs_only_the_submission_it_was_grading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [write_submission(tmp_path / f"{name}.ipynb", ALL) for name in ("ada", "doomed", "yan", "zed")]
    submissions = batches.find_submissions("01_bpe", paths)
    monkeypatch.setattr(batches, "grade_one", grade_or_die)  # the workers are given this function
    options = batches.GradingOptions("01_bpe", timeout=2.0, use_bubblewrap=None)
    reports = list(batches.grade_all(options, submissions, jobs=2))
    assert [(report.status, report.score) for report in reports] == [
        ("graded", TOTAL), ("killed", 0), ("graded", TOTAL), ("graded", TOTAL)]
    assert "was killed" in reports[1].problems[0]


# ---- hidden inputs that are not public ------------------------------------------------------------


def test_a_lookup_table_of_the_public_hidden_inputs_fails_under_a_course_secret(tmp_path: Path) -> None:
    """merge answered by a table of every input its checks use with the public seeds (computed
    offline, as anyone can): full marks without a secret, not with one."""
    from course_lib.tokenization import merge as reference_merge

    from grading.learner_side import decode
    from grading.registry import checks_for

    table = {}
    for check in checks_for("01_bpe", "merge"):
        for each in check.plain_calls():
            ids, pair, new_id = (decode(arg) for arg in each["args"])
            table[(tuple(ids), tuple(pair), new_id)] = reference_merge(ids, pair, new_id)
    cheat = f"TABLE = {table!r}\n\ndef merge(ids, pair, new_id):\n    return list(TABLE[(tuple(ids), tuple(pair), new_id)])\n"
    notebook = write_submission(tmp_path / "cheat.ipynb", ALL, {"merge": cheat})
    scores = {}
    for name, secret in (("public", None), ("secret", "course secret of 2026")):
        env = {key: value for key, value in os.environ.items() if not key.startswith("GRADING_SECRET")}
        env.update({"GRADING_SECRET": secret} if secret else {})
        done = subprocess.run([sys.executable, "-m", "grading", "grade", "01_bpe", str(notebook), "--format", "jsonl"],
                              check=False, capture_output=True, timeout=300, cwd=REPO, env=env)
        assert done.returncode == 0, done.stderr
        (line,) = [json.loads(text) for text in done.stdout.decode("ascii").splitlines()]
        scores[name] = sum(test["score"] for test in line["tests"] if test["name"].startswith("merge"))
        assert ("derived from the course secret" in line["hidden_inputs"]) == (secret is not None)
    assert scores["public"] == TASK_POINTS["merge"]
    assert scores["secret"] < TASK_POINTS["merge"]


# ---- all of it in one batch -----------------------------------------------------------------------

# encode switches off the child's timer and never returns; forging sends a second result line.
TIMER_OFF = {"encode": "import signal\ndef encode(text, merges):\n    signal.setitimer(signal.ITIMER_REAL, 0)\n"
                       "    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n    while True:\n        pass\n"}
FORGED = {"decode": "import sys\ndef decode(ids, merges):\n    frame = sys._getframe()\n"
                    "    while 'send' not in frame.f_locals:\n        frame = frame.f_back\n"
                    "    frame.f_locals['send']({'check': 0, 'outcome': None})\n    return ''\n"}


def test_a_batch_of_every_hostile_kind_grades_its_honest_submissions_exactly(tmp_path: Path) -> None:
    """One batch, graded two at a time: honest students (full marks, and one partial) beside one
    submission of each hostile kind above. The honest ones get exactly their points and their
    results; no hostile one gains a point it did not earn; the batch ends, with status 1 (the
    id collision needs the instructor)."""
    submitted = tmp_path / "submitted"
    honest = {"ada": (ALL, TOTAL), "bob": ({"merge", "decode"}, TASK_POINTS["merge"] + TASK_POINTS["decode"]),
              "zed": (ALL, TOTAL)}
    for student, (answered, _) in honest.items():
        write_submission(submitted / student / "01_bpe" / "bpe.ipynb", answered)
    hostile = {  # student -> (answers, replaced cells, the most it may score)
        "lone": (ALL, SURROGATE, TOTAL - TASK_POINTS["decode"]),
        "tricks": (ALL, TERMINAL_TRICKS, TOTAL - TASK_POINTS["decode"]),
        "grades.csv": (set(), {}, 0),
        "=cmd": (set(), {}, 0),
        "timer": (ALL, TIMER_OFF, TOTAL - TASK_POINTS["encode"]),
        "forger": (ALL, FORGED, TOTAL - TASK_POINTS["decode"] - TASK_POINTS["get_pair_counts"]),
        "a b": (ALL, {}, 0),
        "a_b": (ALL, {}, 0),
    }
    for student, (answered, replaced, _) in hostile.items():
        write_submission(submitted / student / "01_bpe" / "bpe.ipynb", answered, replaced)
    write_submission(submitted / "aaron" / "01_bpe" / "submitted" / "ada" / "01_bpe" / "bpe.ipynb", ALL)
    for student, target in {"copycat": submitted / "zed" / "01_bpe" / "bpe.ipynb", "zero": Path("/dev/zero")}.items():
        (submitted / student / "01_bpe").mkdir(parents=True)
        (submitted / student / "01_bpe" / "bpe.ipynb").symlink_to(target)
    (submitted / "fifo" / "01_bpe").mkdir(parents=True)
    os.mkfifo(submitted / "fifo" / "01_bpe" / "bpe.ipynb")
    latin1 = os.fsencode(submitted) + b"/caf\xe9/01_bpe"
    os.makedirs(latin1)
    write_submission(Path(os.fsdecode(latin1 + b"/bpe.ipynb")), ALL)

    out = tmp_path / "out"
    done = grade("01_bpe", str(submitted), "--out", str(out), "--jobs", "2", limit=600)
    assert done.returncode == 1, done.stderr  # only for the collision
    text = (out / "grades.csv").read_bytes().decode("ascii")
    scores: dict[str, list[float]] = {}
    for row in csv.DictReader(text.splitlines()):
        scores.setdefault(row["student"], []).append(float(row["score"]))
    for student, (_, points) in honest.items():
        assert scores.pop(student) == [points] and results_of(out, student)["score"] == points
    assert scores.pop("caf_") == [TOTAL]  # honest too, under an escaped name
    assert scores.pop("a_b") == [0, 0]  # the collision: neither graded
    ceilings = {"grades.csv_": 0, "_cmd": 0, "aaron": 0, "copycat": 0, "zero": 0, "fifo": 0}
    ceilings.update({student: most for student, (_, _, most) in hostile.items() if student not in ("a b", "a_b")})
    ceilings.pop("grades.csv"), ceilings.pop("=cmd")
    for student, most in ceilings.items():
        (score,) = scores.pop(student)
        assert score <= most, student
    assert scores == {}
