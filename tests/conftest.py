"""Shared pytest options.

`--submission PATH` points the exercise tests at a learner's notebook instead of the solution:

    pytest tests/test_exercise_01_bpe.py --submission ~/Downloads/bpe.ipynb
"""

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
