"""Sphinx extension: serve MathJax from the built book itself, so that equations render offline.

The MathJax files come from the ``jupyter-server-mathjax`` package (in the ``book`` extra; MathJax 2.7,
Apache License 2.0, its licence file is copied along). At the end of an HTML build they are copied to
``_static/mathjax/`` of the output, and every page loads ``_static/mathjax/MathJax.js`` instead of a CDN.

MathJax is told to typeset only the elements Sphinx marks as math (``.math``) and notebook outputs; the
rest of the page is ignored, so a ``$`` in prose or code never turns into an equation.
"""

from __future__ import annotations

import shutil
from pathlib import Path

MATHJAX_DIR = "mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full"
# Not needed by the HTML-CSS output used here.
_SKIP = ("SVG", "unpacked")


def mathjax_source() -> Path:
    """The folder holding ``MathJax.js`` (from ``jupyter-server-mathjax``)."""
    try:
        import jupyter_server_mathjax
    except ImportError as err:  # the book extra installs it
        raise RuntimeError("the book needs MathJax from the jupyter-server-mathjax package: "
                           "pip install -e '.[book]'") from err
    static = Path(jupyter_server_mathjax.__file__).resolve().parent / "static"
    if not (static / "MathJax.js").is_file():
        raise RuntimeError(f"no MathJax.js in {static}; reinstall jupyter-server-mathjax")
    return static


def _configure(app, config):
    mathjax_source()  # fail early, before executing any notebook
    config.mathjax_path = f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"
    config.mathjax3_config = None
    config.mathjax2_config = {
        "tex2jax": {
            "inlineMath": [["\\(", "\\)"]],
            "displayMath": [["\\[", "\\]"]],
            "processEscapes": False,
            "processEnvironments": True,
            "ignoreClass": "bd-main|tex2jax_ignore|mathjax_ignore",
            "processClass": "math|output_area|tex2jax_process|mathjax_process",
        },
        "HTML-CSS": {"availableFonts": ["TeX"], "imageFont": None, "linebreaks": {"automatic": True}},
        "showMathMenu": False,
        "messageStyle": "none",
    }


def _copy(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / MATHJAX_DIR
    shutil.copytree(mathjax_source(), target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*_SKIP))


def setup(app):
    app.connect("config-inited", _configure, priority=900)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
