"""A Sphinx extension that builds the book's term edition: the same book without the solutions.

The normal build (`make book`, `jupyter-book build .`) is the self-study edition: every task on
the exercise pages is followed by its solution, folded behind "Click to show". A class that
grades the exercises needs the same pages without the solutions. One switch selects it:

    BOOK_EDITION=term jupyter-book build . --path-output _build/term     (what `make book-term` runs)

The term edition
- sets sphinx-exercise's `hide_solutions`, which drops every {solution} from the pages (their
  text is not in the HTML at all, not merely folded);
- adds the Sphinx tag `term`, so a page can word itself for either edition with
  ```{only} term``` / ```{only} not term```;
- reads the executed chapters from the normal build's cache, _build/.jupyter_cache: a chapter
  executes once for both editions, and the term edition shows the same outputs;
- must be written to its own folder: building it into _build/html would replace the
  self-study edition there, so the build stops with an error instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sphinx.errors import ConfigError

EDITIONS = ("self-study", "term")


def _choose_edition(app: Any, config: Any) -> None:
    edition = os.environ.get("BOOK_EDITION", "self-study")
    if edition not in EDITIONS:
        raise ConfigError(f"BOOK_EDITION={edition!r}: expected one of {', '.join(EDITIONS)}")
    if edition != "term":
        return
    normal_build = Path(app.srcdir) / "_build"
    if Path(app.outdir).resolve().parent == normal_build.resolve():
        raise ConfigError("BOOK_EDITION=term would overwrite the self-study edition in _build/: "
                          "build the term edition with `make book-term` (--path-output _build/term)")
    config.hide_solutions = True
    config.nb_execution_cache_path = str(normal_build / ".jupyter_cache")
    app.tags.add("term")


def setup(app: Any) -> dict:
    app.connect("config-inited", _choose_edition)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
