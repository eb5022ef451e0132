"""The old name of `course_lib.datasets`, kept only while modules still import it from here
(course_lib/train.py; on main also training/recipes.py and book/05_generation.ipynb)."""

from .datasets import DATASETS, Dataset, DatasetUnavailableError, cache_dir, fetch, load_text

__all__ = ["DATASETS", "Dataset", "DatasetUnavailableError", "cache_dir", "fetch", "load_text"]
