"""Sphinx extension: drop duplicate inline ``<script>`` blocks from every HTML page.

sphinx-thebe 0.3.1 registers its inline configuration script (``const THEBE_JS_URL = ...``) once per
``env-before-read-docs`` event; with Sphinx 7.4 under Jupyter Book 1.0 that event fires more than once, so
each page declared the same ``const`` twice and the browser raised "Identifier 'THEBE_JS_URL' has already
been declared" (found by ``tests/test_book.py`` in headless Chromium). Keeping the first copy of each
identical script fixes it without touching the theme.
"""

from __future__ import annotations


def _key(script):
    filename = getattr(script, "filename", script)
    attributes = tuple(sorted((k, str(v)) for k, v in (getattr(script, "attributes", None) or {}).items()))
    return (str(filename), attributes)


def _dedupe(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _key(script)
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
