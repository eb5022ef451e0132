#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image from the zip made by
#   python -m grading gradescope-zip ASSIGNMENT --out DIR
# (the zip is unpacked into /autograder/source). It installs Python 3.11+, the course's pinned
# requirements (course_lib included), bubblewrap, and downloads what the checks read, so that
# grading an upload needs no network.
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
export DEBIAN_FRONTEND=noninteractive

apt-get update
# bubblewrap gives each learner process its own view of the filesystem and no network. If the
# container does not let it create namespaces, the grader falls back to resource limits only and
# says so in every results.json ("Isolation: rlimits only: ...").
apt-get install -y --no-install-recommends bubblewrap \
  || echo "setup.sh: could not install bubblewrap; grading will use resource limits only" >&2

# The pinned requirements (numpy 2.4) need Python 3.11 or newer: Ubuntu 22.04 has python3.11,
# Ubuntu 24.04's python3 is 3.12.
if apt-get install -y --no-install-recommends python3.11 python3.11-venv; then
  PYTHON=python3.11
else
  apt-get install -y --no-install-recommends python3 python3-venv
  PYTHON=python3
fi
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "the course needs Python 3.11+, got " + sys.version'

"$PYTHON" -m venv "$ROOT/venv"
cd "$SOURCE"  # requirements.txt ends with `-e .`: course_lib from this folder
"$ROOT/venv/bin/pip" install --quiet --upgrade pip
# torch's CPU-only build (2.13.0+cpu sorts above PyPI's 2.13.0): no gigabytes of CUDA libraries.
"$ROOT/venv/bin/pip" install --quiet --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

# Download now what the checks' references read; run_autograder points at the same caches.
export TIKTOKEN_CACHE_DIR="$ROOT/cache/tiktoken" COURSE_LIB_CACHE="$ROOT/cache/course_lib"
"$ROOT/venv/bin/python" -c '
import tiktoken
from course_lib.datasets import load_text
load_text("tinyshakespeare")
tiktoken.get_encoding("cl100k_base")
'
