"""`python -m grading ...`: the batch grader's command line (see cli.py)."""

import sys

from grading.cli import main

if __name__ == "__main__":
    sys.exit(main())
