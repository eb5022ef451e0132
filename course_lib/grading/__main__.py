"""`python -m course_lib.grading ...`: the batch grader's command line (see cli.py)."""

import sys

from course_lib.grading.cli import main

if __name__ == "__main__":
    sys.exit(main())
