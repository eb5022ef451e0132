"""Exercise 01_bpe: typical mistakes lose the points of the checks that name them, and broken or
hostile code gets a clear message instead of crashing the run. What every exercise must do (the
solution passes every check, the released stub none) is tested in tests/test_exercises.py.

References: the visible checks compare with values worked out by hand (in the check definitions
and the notebook's text); the hidden ones with course_lib.tokenization and tiktoken.

To grade a learner's notebook instead of the solution (conftest.py says how):

    pytest tests/test_exercise_01_bpe.py --submission ~/Downloads/bpe.ipynb
"""

import json
import time
from pathlib import Path

import pytest
import regex
import tiktoken
from exercise_testing import REPO, STANDARD_LIBRARY, assert_fails_naming, check_named, check_points, judged
from exercise_testing import top_level_imports, with_answer
from submission_notebooks import ASSIGNMENTS

from grading import check_task, checks_for, extract_source, grade_submission
from grading import load_namespace, run_checks, task_points
from grading.checks import Check, SetupError, call, judge
from grading.exercises import bpe
from grading.grader import _learner_side_modules
from grading.in_process import collect, format_report
from grading.learner_side import CheckFailure, run_check, to_plain
from grading.notebook import read_notebook
from course_lib.tokenization.patterns import GPT4_SPLIT_PATTERN

EXERCISE = "01_bpe"
SOLUTION = ASSIGNMENTS[EXERCISE].solution
TOTAL = ASSIGNMENTS[EXERCISE].max_score
GRADING = REPO / "grading"
# The modules copied into the sandbox to call the learner's code: file under GRADING -> module.
LEARNER_SIDE = {
    "learner_side.py": "grading.learner_side",
    "exercises/bpe_calls.py": "grading.exercises.bpe_calls",
}


# ---- the check definitions ------------------------------------------------------------------


@pytest.mark.parametrize("module", list(LEARNER_SIDE))
def test_learner_side_modules_import_only_the_standard_library(module: str) -> None:
    # They are copied into the sandbox, where course_lib (and its dependencies) may not exist; a
    # grader of 01_bpe does not even need torch.
    assert top_level_imports(GRADING / module) <= STANDARD_LIBRARY, module
    assert _learner_side_modules(checks_for(EXERCISE)) == set(LEARNER_SIDE.values())


def test_notebook_pattern_is_gpt4s(solution_namespace: dict) -> None:
    assert solution_namespace["GPT4_SPLIT_PATTERN"] == GPT4_SPLIT_PATTERN
    assert solution_namespace["GPT4_SPLIT_PATTERN"] == tiktoken.get_encoding("cl100k_base")._pat_str


def test_extraction_runs_answer_and_setup_cells_only(solution_namespace: dict) -> None:
    # (tests/test_exercises.py checks which cells are graded, for every exercise.)
    assert "shakespeare" not in solution_namespace  # the closing demo cell, which downloads, did not run
    assert "load_text" not in extract_source(SOLUTION)


# ---- the solution is fast enough -------------------------------------------------------------


def test_solution_checks_are_fast(solution_namespace: dict) -> None:
    # The solution's train_bpe is the simple full-recount version a learner writes; each check,
    # once its inputs are cached, takes about 0.1 s on a quiet 2-core machine. The bound is a
    # fifth of the grader's per-check time limit (10 s), so that a correct but slow learner keeps
    # full marks with room to spare, and a loaded machine does not make this test flaky.
    run_checks(solution_namespace, EXERCISE)  # warm the caches (cl100k, Tiny Shakespeare)
    for check in checks_for(EXERCISE):
        calls = check.plain_calls()
        start = time.perf_counter()
        outcome = run_check(solution_namespace, check.task, calls)
        assert time.perf_counter() - start < 2.0, check.name
        assert outcome["error"] is None, outcome


# ---- typical mistakes, each a submission graded in the sandbox ---------------------------------

WRONG = {
    "merge scanning from the right": (
        """
def merge(ids, pair, new_id):
    merged, i = [], len(ids) - 1
    while i >= 0:
        if i > 0 and (ids[i - 1], ids[i]) == pair:
            merged.append(new_id)
            i -= 2
        else:
            merged.append(ids[i])
            i -= 1
    return merged[::-1]
""",
        {
            "merge scans runs of the same id from left to right",
            "merge on a long random sequence with many overlaps",
        },
    ),
    "merge that changes its input": (
        """
def merge(ids, pair, new_id):
    i = 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            ids[i : i + 2] = [new_id]
        i += 1
    return ids
""",
        {"merge handles pairs at both ends and leaves its input unchanged"},
    ),
    "train_bpe breaking ties by first occurrence": (
        """
def train_bpe(text, vocab_size):
    chunks = [list(c.encode("utf-8")) for c in regex.findall(GPT4_SPLIT_PATTERN, text)]
    merges = []
    for new_id in range(256, vocab_size):
        counts = {}
        for chunk in chunks:
            for pair, n in get_pair_counts(chunk).items():
                counts[pair] = counts.get(pair, 0) + n
        best = max(counts, key=counts.get)
        chunks = [merge(chunk, best, new_id) for chunk in chunks]
        merges.append(best)
    return merges
""",
        {"train_bpe learns merges in order and breaks ties by the smallest pair"},
    ),
    "train_bpe counting across chunks": (
        """
def train_bpe(text, vocab_size):
    ids = list(text.encode("utf-8"))
    merges = []
    for new_id in range(256, vocab_size):
        counts = get_pair_counts(ids)
        best = min(counts, key=lambda p: (-counts[p], p))
        ids = merge(ids, best, new_id)
        merges.append(best)
    return merges
""",
        {"train_bpe counts pairs only inside chunks", "train_bpe on a slice of Tiny Shakespeare"},
    ),
    "encode without chunks": (
        """
def encode(text, merges):
    ids = list(text.encode("utf-8"))
    for i, pair in enumerate(merges):
        ids = merge(ids, pair, 256 + i)
    return ids
""",
        {"encode never merges across chunks"},
    ),
    "decode without errors='replace'": (
        """
def decode(ids, merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for i, (a, b) in enumerate(merges):
        vocab[256 + i] = vocab[a] + vocab[b]
    return b"".join(vocab[i] for i in ids).decode("utf-8")
""",
        {
            "decode replaces invalid UTF-8 with U+FFFD",
            "decode handles tokens that split characters, like tiktoken",
        },
    ),
    "get_pair_counts skipping the last pair": (
        """
def get_pair_counts(ids):
    counts = {}
    for i in range(len(ids) - 2):
        pair = (ids[i], ids[i + 1])
        counts[pair] = counts.get(pair, 0) + 1
    return counts
""",
        {
            "get_pair_counts counts each adjacent pair",
            "get_pair_counts counts overlapping repeats and handles short lists",
        },
    ),
    "merge missing a pair at the end (off by one)": (
        """
def merge(ids, pair, new_id):
    merged, i = [], 0
    while i < len(ids):
        if i < len(ids) - 2 and (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged
""",
        {"merge handles pairs at both ends and leaves its input unchanged"},
    ),
    "train_bpe returning the new ids instead of the pairs": (
        """
def train_bpe(text, vocab_size):
    chunks = [list(c.encode("utf-8")) for c in regex.findall(GPT4_SPLIT_PATTERN, text)]
    new_ids = []
    for new_id in range(256, vocab_size):
        counts = {}
        for chunk in chunks:
            for pair, n in get_pair_counts(chunk).items():
                counts[pair] = counts.get(pair, 0) + n
        best = min(counts, key=lambda p: (-counts[p], p))
        chunks = [merge(chunk, best, new_id) for chunk in chunks]
        new_ids.append(new_id)
    return new_ids
""",
        # Every check but the one with no merges to learn, where the answer is [] either way.
        {check.name for check in checks_for(EXERCISE, "train_bpe")} - {"train_bpe with no merges to learn, or nothing to merge"},
    ),
    "encode applying the leftmost mergeable pair first": (
        """
def encode(text, merges):
    new_ids = {pair: 256 + i for i, pair in enumerate(merges)}
    ids = []
    for chunk in regex.findall(GPT4_SPLIT_PATTERN, text):
        chunk_ids = list(chunk.encode("utf-8"))
        while True:
            found = [p for p in zip(chunk_ids, chunk_ids[1:]) if p in new_ids]
            if not found:
                break
            chunk_ids = merge(chunk_ids, found[0], new_ids[found[0]])
        ids += chunk_ids
    return ids
""",
        {"encode applies the earliest learned merge first"},
    ),
    "decode numbering merges from 255": (
        """
def decode(ids, merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for i, (a, b) in enumerate(merges):
        vocab[255 + i] = vocab[a] + vocab[b]
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
""",
        {
            "decode reads UTF-8 and expands merged ids",
            "decode inverts tiktoken's cl100k_base (first 2,000 merges) on multilingual text",
        },
    ),
}


# Which task's answer cell each mistake replaces: the function it defines.
def _task_of(source: str) -> str:
    return regex.search(r"^def (\w+)", source, regex.M).group(1)


@pytest.mark.parametrize("mistake", list(WRONG))
def test_mistake_loses_points_of_the_checks_it_breaks(notebook_with, mistake: str) -> None:
    source, must_fail = WRONG[mistake]
    # A merge that misses a pair makes the solution's encode loop forever: a short time limit
    # keeps the test quick (a correct check takes well under 0.5 s, see above).
    report = grade_submission(EXERCISE, notebook_with({_task_of(source): source}), timeout=1)
    assert report.problems == []
    assert_fails_naming(report.results, must_fail, EXERCISE, mistake)
    assert report.score <= TOTAL - check_points(EXERCISE, must_fail)


def test_decode_mistake_message_says_what_happened(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["decode without errors='replace'"][0])
    result = judged(EXERCISE, "decode replaces invalid UTF-8 with U+FFFD", namespace)
    assert result.message.startswith("Called decode([128], [])")
    assert "raised UnicodeDecodeError" in result.message


def test_hidden_failure_never_shows_the_expected_value(solution_namespace: dict) -> None:
    namespace = with_answer(solution_namespace, WRONG["train_bpe counting across chunks"][0])
    check = check_named(EXERCISE, "train_bpe on a slice of Tiny Shakespeare")
    result = judge(check, collect(check, namespace))
    (expected,) = check.expected()
    assert not result.passed
    assert result.message == (
        "Called train_bpe(<3,000 characters of Tiny Shakespeare>, 296): the result differs from the reference."
    )
    assert repr(expected[:3])[1:-1] not in format_report([result], EXERCISE)


def test_visible_failure_shows_expected_and_got_as_python_prints_them(solution_namespace: dict) -> None:
    namespace = with_answer(
        solution_namespace,
        WRONG["merge scanning from the right"][0],
        "def get_pair_counts(ids):\n    return {p: 1 for p in zip(ids, ids[1:])}\n",
    )
    assert judged(EXERCISE, "merge scans runs of the same id from left to right", namespace).message == (
        "Called merge([1, 1, 1], (1, 1), 256):\n"
        "  expected [256, 1]\n"
        "  got      [1, 256]"
    )
    counts_check = "get_pair_counts counts overlapping repeats and handles short lists"
    assert judged(EXERCISE, counts_check, namespace).message == (
        "Called get_pair_counts([5, 5, 5, 5]):\n"
        "  expected {(5, 5): 3}\n"
        "  got      {(5, 5): 1}"
    )


def test_long_visible_lists_point_at_the_first_difference() -> None:
    namespace: dict = {}
    exec("def encode(text, merges):\n    return list(text.encode('utf-16-le'))\n", namespace)
    result = run_checks(namespace, EXERCISE, "encode")[0]
    assert result.message.endswith("\n  first difference at index 1: expected 195, got 0"), result.message


# ---- hostile or broken code never crashes the run -------------------------------------------


class _EqualsEverything(list):
    def __eq__(self, other: object) -> bool:
        return True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("raise SystemExit(3)", "raised SystemExit: 3"),
        ("return (5, 6, 99, 9)", "merge should return a list of ints, got tuple"),
        ("return [5, 6, 99.0, 9]", "merge should return a list of ints, but it contains 99.0"),
        ("return [5, 6, True, 9]", "merge should return a list of ints, but it contains True"),
        ("print('debug', file=sys.stderr); return []", "your code printed: 'debug\\n'"),
        ("return merge(ids, pair, new_id)", "raised RecursionError"),
    ],
)
def test_broken_merge_gets_a_clear_message(body: str, message: str) -> None:
    namespace: dict = {}
    exec(f"import sys\ndef merge(ids, pair, new_id):\n    {body}\n", namespace)
    results = run_checks(namespace, EXERCISE, "merge")
    assert all(result.score == 0 for result in results)
    assert message in results[0].message


def test_a_lying_return_value_does_not_pass() -> None:
    # A list subclass whose == always says True must not cross: only exact plain types do.
    check = checks_for(EXERCISE, "merge")[0]
    outcome = collect(check, {"merge": lambda ids, pair, new_id: _EqualsEverything([0])})
    assert outcome.values == ([0],) and type(outcome.values[0]) is list
    assert not judge(check, outcome).passed
    with pytest.raises(CheckFailure):
        to_plain(_EqualsEverything())


def test_missing_function_and_interrupt() -> None:
    results = run_checks({}, EXERCISE, "encode")
    assert "no function named `encode` is defined" in results[0].message
    namespace: dict = {}
    exec("def decode(ids, merges):\n    raise KeyboardInterrupt\n", namespace)
    first, *rest = run_checks(namespace, EXERCISE, "decode")
    assert "was interrupted" in first.message
    assert all(r.message.startswith("Not run: an earlier check") for r in rest)


def test_check_task_prints_a_report_and_returns_the_score(solution_namespace: dict, capsys) -> None:
    namespace = with_answer(solution_namespace, WRONG["train_bpe counting across chunks"][0])
    score = check_task(namespace, EXERCISE, "train_bpe")
    printed = capsys.readouterr()
    assert printed.err == ""  # nbgrader scores a cell that writes to stderr as 0
    assert type(score) is float and 0 < score < task_points(EXERCISE)["train_bpe"]
    assert printed.out.startswith(f"01_bpe · train_bpe: {score:g} / 7 points\n")
    tie_check = "train_bpe learns merges in order and breaks ties by the smallest pair"
    assert f"  PASS {tie_check} (1/1)\n" in printed.out
    assert "  FAIL train_bpe counts pairs only inside chunks (0/1)\n" in printed.out
    assert "  FAIL [hidden] train_bpe on a slice of Tiny Shakespeare (0/2)\n" in printed.out


def test_broken_answer_cells_are_reported_and_the_rest_still_runs(tmp_path: Path) -> None:
    notebook = read_notebook(SOLUTION)
    for cell in notebook["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "merge":
            cell["source"] = "%time x = 1\ndef merge(ids, pair, new_id)\n    return ids\n"
        if cell["metadata"].get("nbgrader", {}).get("grade_id") == "decode":
            cell["source"] = "!echo hi\nraise SystemExit('stop')\n"
    path = tmp_path / "broken.ipynb"
    path.write_text(json.dumps(notebook))
    namespace, problems = load_namespace(path)
    assert problems == [
        "answer cell 'merge' (cell 11) has a syntax error: expected ':' (line 2)",
        "answer cell 'decode' (cell 26) raised SystemExit: stop (line 2)",
    ]
    assert "merge" not in namespace and "encode" in namespace
    outcome = collect(checks_for(EXERCISE, "merge")[0], namespace)
    assert outcome.error.startswith("no function named `merge` is defined")


def test_a_reference_that_cannot_be_built_stops_with_a_clear_message(monkeypatch) -> None:
    # Offline without the Tiny Shakespeare file: no learner may score 0 for the grader's missing
    # file, so computing the expected value raises, naming what is missing.
    from course_lib.datasets import DatasetUnavailableError

    def offline(name: str) -> str:
        raise DatasetUnavailableError("no network")

    monkeypatch.setattr(bpe, "load_text", offline)
    check = Check("train_bpe", "a fresh check", call("train_bpe", bpe.shakespeare(0, 100), 260, returns=bpe.PAIRS),
                  reference=bpe.train_reference)
    with pytest.raises(SetupError, match="100 characters of Tiny Shakespeare>: DatasetUnavailableError: no network"):
        check.expected()


def test_check_cells_write_nothing_to_stderr(capsys) -> None:
    # Warnings and log records from the learner's code (or a download) would reach stderr, and
    # nbgrader gives a cell that writes to stderr 0 points.
    import logging

    namespace: dict = {}
    exec(
        "import logging, warnings\n"
        "def merge(ids, pair, new_id):\n"
        "    warnings.warn('careful')\n"
        "    logging.getLogger('learner').error('logged')\n"
        "    return []\n",
        namespace,
    )
    handler = logging.StreamHandler()  # writes to sys.stderr as it is now: pytest's capture
    logging.getLogger("learner").addHandler(handler)
    try:
        check_task(namespace, EXERCISE, "merge")
    finally:
        logging.getLogger("learner").removeHandler(handler)
    assert capsys.readouterr().err == ""
