"""Shared pytest options and fixtures.

`--submission PATH` points the exercise tests at a learner's notebook instead of the solution:

    pytest tests/test_exercise_01_bpe.py --submission ~/Downloads/bpe.ipynb

`notebook_with(path, {"merge": source})` writes the solution notebook with answer cells replaced,
the way a learner's submission with those answers would look.
"""

import json
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SUBMISSION = REPO / "solutions" / "01_bpe" / "bpe.ipynb"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--submission",
        default=str(DEFAULT_SUBMISSION),
        help="notebook whose answers the exercise checks grade (default: the solution notebook)",
    )


@pytest.fixture(scope="session")
def submission(request: pytest.FixtureRequest) -> Path:
    """The notebook under test (--submission), as an existing path."""
    path = Path(request.config.getoption("--submission")).expanduser().resolve()
    if not path.is_file():
        raise pytest.UsageError(f"--submission {path}: no such notebook")
    return path


def write_notebook_with(path: Path, answers: dict[str, str], base: Path = DEFAULT_SUBMISSION) -> Path:
    """Write `base` with the source of each answer (or setup) cell whose nbgrader grade id is in
    `answers` replaced; a grade id the notebook lacks is an error in the test."""
    notebook = json.loads(base.read_text(encoding="utf-8"))
    ids = [cell["metadata"].get("nbgrader", {}).get("grade_id") for cell in notebook["cells"]]
    missing = set(answers) - set(ids)
    assert not missing, f"no cells with grade ids {missing}"
    for cell, grade_id in zip(notebook["cells"], ids):
        if grade_id in answers:
            cell["source"] = answers[grade_id]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return path


@pytest.fixture
def notebook_with(tmp_path: Path) -> Callable[..., Path]:
    """write_notebook_with, into this test's temporary folder: notebook_with({"merge": src}) -> path."""

    def write(answers: dict[str, str], name: str = "submission.ipynb", base: Path = DEFAULT_SUBMISSION) -> Path:
        return write_notebook_with(tmp_path / name, answers, base)

    return write
