"""A Sphinx extension that adds the book's own stylesheet, book/_ext/static/layout.css.

It makes the column hold what the house rules allow (code and output lines of 78 characters;
see the stylesheet for the numbers). tests/test_book.py measures the result in a browser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "static"


def _add_static_folder(app: Any, config: Any) -> None:
    config.html_static_path.append(str(STATIC))


def setup(app: Any) -> dict:
    app.connect("config-inited", _add_static_folder)
    app.add_css_file("layout.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
