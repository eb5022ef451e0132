"""A Sphinx extension that adds the book's own stylesheet, book/_ext/static/layout.css.

It makes the column hold what the house rules allow (code and output lines of 78 characters;
see the stylesheet for the numbers). tests/test_book.py measures the result in a browser.

Sphinx copies static files only when it writes pages, and an edited stylesheet alone does not
make a page out of date; so the stylesheet's digest is an HTML setting: a change to the
stylesheet rewrites every page (the chapters are not executed again).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

STATIC = Path(__file__).parent / "static"
STYLESHEET = STATIC / "layout.css"


def _add_stylesheet(app: Any, config: Any) -> None:
    config.html_static_path.append(str(STATIC))
    config.book_layout_digest = hashlib.sha256(STYLESHEET.read_bytes()).hexdigest()


def setup(app: Any) -> dict:
    app.add_config_value("book_layout_digest", "", "html")
    app.connect("config-inited", _add_stylesheet)
    app.add_css_file(STYLESHEET.name)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
