"""The Gradescope autograder of 01_bpe: the zip holds what a worker needs and no answers, and its
run_autograder, run against a temporary folder laid out like Gradescope's /autograder (source/
from the zip, submission/ with the upload, results/), writes the results file Gradescope reads.

References: Gradescope's autograder specification (setup.sh and run_autograder at the zip's root;
/autograder/results/results.json with score and tests); the scores are the points the notebook's
check cells state (26 for the solution, 0 for the unedited release).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from submission_notebooks import RELEASE, SOLUTION

from grading.batch import choose_notebook
from grading.gradescope import build_zip

REPO = Path(__file__).resolve().parent.parent


def make_zip(out: Path, *options: str, secret: str | None = None) -> Path:
    """`python -m grading gradescope-zip 01_bpe --out out *options`, with GRADING_SECRET=secret."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("GRADING_SECRET")}
    if secret is not None:
        env["GRADING_SECRET"] = secret
    done = subprocess.run(
        [sys.executable, "-m", "grading", "gradescope-zip", "01_bpe", "--out", str(out), *options],
        cwd=REPO, env=env, check=False, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_zip(tmp_path_factory.mktemp("dist"))


def without_bubblewrap(folder: Path) -> str:
    """A PATH with what run_autograder needs (bash, python3) and no bwrap."""
    folder.mkdir()
    (folder / "bash").symlink_to(shutil.which("bash"))
    python3 = folder / "python3"  # a script, not a link: a link would lose the venv
    python3.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python3.chmod(0o755)
    return str(folder)


def autograder(archive: Path, root: Path, uploads: dict[str, Path], path: str | None = None,
               status: int = 0) -> dict:
    """Lay out `root` like Gradescope's /autograder, run run_autograder (with PATH `path`, by
    default this venv's python3 in front of the usual one), check its exit status, return results.json."""
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(root / "source")
    for script in ["setup.sh", "run_autograder"]:  # extractall drops the modes the zip records
        (root / "source" / script).chmod(0o755)
    (root / "submission").mkdir()
    (root / "results").mkdir()
    for name, notebook in uploads.items():
        shutil.copy(notebook, root / "submission" / name)
    # Gradescope copies run_autograder to /autograder/run_autograder and runs it from there.
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    env = {key: value for key, value in os.environ.items() if not key.startswith("GRADING_SECRET")}
    env["AUTOGRADER_ROOT"] = str(root)
    env["PATH"] = path or os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")  # python3: this venv's
    done = subprocess.run(
        ["bash", str(root / "run_autograder")], cwd=root, env=env, check=False, capture_output=True, text=True,
        timeout=120,
    )
    assert done.returncode == status, done.stderr
    return json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))


def test_zip_has_the_scripts_the_grader_and_no_answers(archive: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        modes = {info.filename: info.external_attr >> 16 for info in zipped.infolist()}
        config = json.loads(zipped.read("assignment.json"))
    assert archive.name == "gradescope-01_bpe.zip"
    for required in ["setup.sh", "run_autograder", "requirements.txt", "pyproject.toml", "grading/cli.py"]:
        assert required in names
    assert modes["setup.sh"] & stat.S_IXUSR and modes["run_autograder"] & stat.S_IXUSR
    assert config == {"assignment": "01_bpe", "notebooks": ["bpe.ipynb"], "allow_rlimits": False}
    assert "course_secret" not in names  # made without a secret
    # No solutions, no notebooks at all, nothing from tests/ or the book: the checks compute their
    # references with course_lib.
    assert not [name for name in names if name.startswith(("solutions/", "exercises/", "tests/", "book/"))]
    assert not [name for name in names if name.endswith(".ipynb") or "__pycache__" in name]
    solution_text = SOLUTION.read_text(encoding="utf-8")
    assert "### BEGIN SOLUTION" in solution_text
    with zipfile.ZipFile(archive) as zipped:
        assert not [name for name in names if b"### BEGIN SOLUTION" in zipped.read(name)]


def test_the_same_zip_twice(archive: Path, tmp_path: Path) -> None:
    assert build_zip("01_bpe", tmp_path, repository=REPO).read_bytes() == archive.read_bytes()


def test_solution_scores_full_marks_on_gradescope(archive: Path, tmp_path: Path) -> None:
    results = autograder(archive, tmp_path, {"bpe.ipynb": SOLUTION})
    assert results["score"] == 26
    assert [test["status"] for test in results["tests"]] == ["passed"] * len(results["tests"])
    assert "Isolation:" in results["output"]


def test_release_scores_0_on_gradescope(archive: Path, tmp_path: Path) -> None:
    results = autograder(archive, tmp_path, {"bpe (1).ipynb": RELEASE})
    assert results["score"] == 0
    assert sum(test["max_score"] for test in results["tests"]) == 26
    assert {test["visibility"] for test in results["tests"]} == {"visible", "after_published"}


def test_an_upload_without_a_notebook_scores_0_and_says_what_to_upload(archive: Path, tmp_path: Path) -> None:
    results = autograder(archive, tmp_path, {"bpe.py": REPO / "course_lib" / "__init__.py"})
    assert results["score"] == 0
    assert "no notebook (.ipynb) found in your submission: upload your bpe.ipynb" in results["output"]


def test_choose_notebook_prefers_the_released_name(tmp_path: Path) -> None:
    paths = [tmp_path / name for name in ["bpe (1).ipynb", "bpe.ipynb", "notes.ipynb"]]
    chosen, extra = choose_notebook(paths, "bpe.ipynb")
    assert chosen.name == "bpe.ipynb" and [path.name for path in extra] == ["bpe (1).ipynb", "notes.ipynb"]
    chosen, extra = choose_notebook([paths[0], paths[2]], "bpe.ipynb")
    assert chosen.name == "bpe (1).ipynb" and [path.name for path in extra] == ["notes.ipynb"]


def test_extra_notebooks_of_an_upload_are_reported_not_graded(archive: Path, tmp_path: Path) -> None:
    results = autograder(archive, tmp_path, {"bpe.ipynb": SOLUTION, "bpe (1).ipynb": RELEASE})
    assert results["score"] == 26
    assert "Other notebooks in your folder were not graded: bpe (1).ipynb" in results["output"]


def test_without_bubblewrap_a_worker_refuses_to_grade_unless_the_zip_allows_it(archive: Path, tmp_path: Path) -> None:
    """A 0/26 that once came back as 26/26 from a process that outlived the fallback's run: now
    the fallback is refused, and where an instructor allows it, the child runs as its own uid."""
    path = without_bubblewrap(tmp_path / "bin")
    refused = autograder(archive, tmp_path / "refused", {"bpe.ipynb": SOLUTION}, path=path, status=2)
    assert refused["score"] == 0
    assert "the autograder cannot isolate your code here (bwrap not found" in refused["output"]
    allowed_zip = make_zip(tmp_path / "dist", "--allow-rlimits")
    allowed = autograder(allowed_zip, tmp_path / "allowed", {"bpe.ipynb": SOLUTION}, path=path)
    assert allowed["score"] == 26 and "Isolation: rlimits only" in allowed["output"]


def test_a_course_secret_travels_in_the_zip_and_changes_the_hidden_inputs(archive: Path, tmp_path: Path) -> None:
    secret_zip = make_zip(tmp_path / "dist", secret="a long random course secret")
    with zipfile.ZipFile(secret_zip) as zipped:
        assert zipped.read("course_secret") == b"a long random course secret"
    with_secret = autograder(secret_zip, tmp_path / "secret", {"bpe.ipynb": SOLUTION})
    public = autograder(archive, tmp_path / "public", {"bpe.ipynb": SOLUTION})
    assert with_secret["score"] == public["score"] == 26
    assert "Hidden inputs: seeds derived from the course secret." in with_secret["output"]
    assert "Hidden inputs: public seeds" in public["output"]
