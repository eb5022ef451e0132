"""A Sphinx extension that writes each <script> of a page once.

Sphinx 7.4 registers an inline script that an extension adds after the builder has started
(`app.add_js_file(None, body=...)`) twice: once under the name None and once under "", which it
does not recognise as the same script. sphinx-thebe's inline script declares
`const THEBE_JS_URL`, so the second copy throws "Identifier 'THEBE_JS_URL' has already been
declared" in every reader's browser console. tests/test_book.py fails on console errors.
"""

from __future__ import annotations

from typing import Any


def _drop_repeated_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    seen = set()
    unique = []
    for script in context.get("script_files", []):
        key = (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app: Any) -> dict:
    app.connect("html-page-context", _drop_repeated_scripts, priority=900)  # after the other handlers
    return {"parallel_read_safe": True, "parallel_write_safe": True}
