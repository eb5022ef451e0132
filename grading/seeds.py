"""The seeds of the checks' random inputs: public, or derived from the instructor's secret.

The hidden checks' inputs are random tensors, ids and texts drawn from seeds written in this
repository. Anyone can run the same code, so a learner could compute every hidden input and its
expected output offline and hand in a lookup table instead of an implementation. An instructor
who sets a course secret closes that door: each seed n is then replaced by a number derived from
the secret (HMAC-SHA256 of n, 31 bits), which nobody without the secret can predict.

    GRADING_SECRET="some long random text" python -m grading grade 03_attention submitted/
    GRADING_SECRET_FILE=/path/outside/the/course python -m grading grade ...

Keep the secret out of the repository (and out of every folder a sandboxed child may read).
Without it the public seeds are used, and every report says so (`hidden_inputs`). The fixed
texts of 01_bpe's hidden checks are public either way; the secret changes the random ones.

    >>> seed(7) if course_secret() is None else "secret set"
    7
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

SECRET_ENV = "GRADING_SECRET"
SECRET_FILE_ENV = "GRADING_SECRET_FILE"


def course_secret() -> bytes | None:
    """The instructor's secret, from $GRADING_SECRET or the file named by $GRADING_SECRET_FILE,
    or None when neither is set. An empty secret, or a file that cannot be read, is an error:
    grading with public seeds by accident would look like grading with secret ones."""
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV].encode()
    path = os.environ.get(SECRET_FILE_ENV)
    if not path:
        return None
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as err:
        raise RuntimeError(f"${SECRET_FILE_ENV}={path} cannot be read: {err}") from None
    if not secret:
        raise RuntimeError(f"${SECRET_FILE_ENV}={path} is empty: put a long random text in it")
    return secret


def seed(n: int) -> int:
    """The seed the checks use in place of the public seed `n`: n itself without a secret, else
    31 bits of HMAC-SHA256(secret, n), the same for every submission graded with that secret."""
    secret = course_secret()
    if secret is None:
        return n
    digest = hmac.new(secret, f"seed {n}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


def hidden_inputs() -> str:
    """Where the hidden checks' random inputs come from, as the reports say it."""
    if course_secret() is None:
        return f"public seeds (set {SECRET_ENV} to derive them from a course secret)"
    return "seeds derived from the course secret"
