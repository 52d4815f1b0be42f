"""Sphinx extension: the course book's build chores.

* **Execution report.** At the end of a build it prints which lessons were executed by this build and which
  were read from the execution cache (``_build/.jupyter_cache``), with their times, and the build fails
  (non-zero exit) when a lesson's execution failed, whether it was executed now or not.
* **Notebooks and Colab.** Every lesson is also written as a Jupyter notebook (jupytext, at build time,
  never committed) to ``notebooks/<lesson>.ipynb`` of the built site. Its first cell sets the course up on
  Colab: it clones the repository, installs the package without replacing Colab's own TensorFlow, and
  moves into ``lessons/``; elsewhere it does nothing. Each lesson page links to its notebook and to Colab,
  which opens the notebook from the branch that holds the published book (``course_book_branch``). The
  repository is named once, in ``_config.yml`` (``repository: url``).
"""

from __future__ import annotations

import time
from pathlib import Path

from docutils import nodes
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

LESSON_PREFIX = "lessons/"
NOTEBOOK_DIR = "notebooks"

COLAB_SETUP = '''\
# Setup on Colab: get the course (the package and the lessons' helpers) and install it. A plain install keeps
# Colab's own TensorFlow (with GPU support). Outside Colab this cell does nothing.
import os
import subprocess
import sys

REPOSITORY = "{url}"
if "google.colab" in sys.modules:
    course = "/content/visiondl-keras"
    if not os.path.isdir(course):
        subprocess.run(["git", "clone", "--depth", "1", REPOSITORY, course], check=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", course], check=True)
    sys.path[:0] = [course, os.path.join(course, "lessons")]
    os.chdir(os.path.join(course, "lessons"))
'''


def repository_url(config) -> str:
    url = (config.html_theme_options or {}).get("repository_url") or ""
    return url.rstrip("/")


def colab_url(repo: str, branch: str, lesson: str) -> str | None:
    """The Colab address of a lesson's notebook on the published branch, or ``None`` for a non-GitHub host."""
    prefix = "https://github.com/"
    if not repo.startswith(prefix):
        return None
    return f"https://colab.research.google.com/github/{repo[len(prefix):]}/blob/{branch}/{NOTEBOOK_DIR}/{lesson}.ipynb"


def _is_lesson(docname: str) -> bool:
    return docname.startswith(LESSON_PREFIX) and docname[len(LESSON_PREFIX):][:2].isdigit()


def _start(app, config):
    app.course_build_started = time.time()


def _links(app, doctree, docname):
    if not _is_lesson(docname):
        return
    lesson = docname[len(LESSON_PREFIX):]
    notebook = f"../{NOTEBOOK_DIR}/{lesson}.ipynb"
    parts = [f'<a class="reference external" href="{notebook}" download>Download this lesson as a notebook '
             f'(.ipynb)</a>']
    colab = colab_url(repository_url(app.config), app.config.course_book_branch, lesson)
    if colab:
        parts.append(f'<a class="reference external colab-launch" href="{colab}">Open it in Colab</a>')
    html = '<p class="course-notebook-links">' + " · ".join(parts) + "</p>"
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is not None:
        section.insert(1, nodes.raw("", html, format="html"))


def _write_notebooks(app):
    import jupytext
    from nbformat.v4 import new_code_cell

    out = Path(app.outdir) / NOTEBOOK_DIR
    out.mkdir(parents=True, exist_ok=True)
    setup = COLAB_SETUP.format(url=repository_url(app.config))
    for docname in sorted(d for d in app.env.found_docs if _is_lesson(d)):
        source = Path(app.srcdir) / (docname + ".md")
        if not source.is_file():
            continue
        nb = jupytext.read(source)
        nb.cells.insert(0, new_code_cell(setup, metadata={"tags": ["colab-setup"]}))
        jupytext.write(nb, out / (Path(docname).name + ".ipynb"), fmt="ipynb")


def _report(app):
    from myst_nb.sphinx_ import NbMetadataCollector

    started = getattr(app, "course_build_started", 0.0)
    executed, cached, failed = [], [], []
    for docname in sorted(d for d in app.env.found_docs if _is_lesson(d)):
        data = NbMetadataCollector.get_exec_data(app.env, docname)
        if not data:
            continue
        name = docname[len(LESSON_PREFIX):]
        entry = f"{name} ({data.get('runtime') or 0:.0f} s)"
        (executed if data.get("mtime", 0) >= started else cached).append(entry)
        if not data.get("succeeded", True):
            failed.append(f"{name}: {(data.get('error') or '').strip()[:200]}")
    logger.info("lessons executed by this build: %s", ", ".join(executed) or "none")
    logger.info("lessons read from the execution cache: %s", ", ".join(cached) or "none")
    if failed:
        raise ExtensionError("lesson execution failed (fix the cell, then rebuild):\n" + "\n".join(failed))


def _finished(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    _write_notebooks(app)
    _report(app)


def setup(app):
    app.add_config_value("course_book_branch", "gh-pages", "html")
    app.connect("config-inited", _start)
    app.connect("doctree-resolved", _links)
    app.connect("build-finished", _finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
