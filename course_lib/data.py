"""The old name of `course_lib.datasets`, kept only while course_lib/train.py imports from it."""

from .datasets import DatasetUnavailableError, load_text

__all__ = ["DatasetUnavailableError", "load_text"]
