"""The book's build extensions (``book/_ext``), without building the book: Colab links and setup cell, the
execution report that fails a build with a failed lesson, and the offline MathJax configuration."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
pytest.importorskip("sphinx", reason="the book extras: pip install -e .[book]")
pytest.importorskip("myst_nb", reason="the book extras: pip install -e .[book]")

import course_build  # noqa: E402
import offline_mathjax  # noqa: E402


def test_colab_url_uses_the_repository_and_the_published_branch():
    url = course_build.colab_url("https://github.com/owner/course", "gh-pages", "03_cnn_from_scratch")
    assert url == ("https://colab.research.google.com/github/owner/course/blob/gh-pages/notebooks/"
                   "03_cnn_from_scratch.ipynb")
    assert course_build.colab_url("https://gitlab.com/owner/course", "gh-pages", "x") is None


def test_colab_setup_cell_keeps_colab_tensorflow():
    cell = course_build.COLAB_SETUP.format(url="https://github.com/owner/course")
    compile(cell, "<setup>", "exec")
    assert "https://github.com/owner/course" in cell and "google.colab" in cell
    install = [line for line in cell.splitlines() if "pip" in line]
    assert install and all("tensorflow" not in line and "[cpu]" not in line for line in install)


def _app(exec_data: dict, started: float):
    from myst_nb.sphinx_ import NbMetadataCollector

    env = SimpleNamespace(found_docs=set(exec_data) | {"book/intro"})
    for docname, data in exec_data.items():
        NbMetadataCollector.set_exec_data(env, docname, data)
    return SimpleNamespace(env=env, course_build_started=started)


def test_execution_report_names_executed_and_cached_lessons(caplog):
    now = time.time()
    app = _app({"lessons/01_a": {"mtime": now + 1, "runtime": 12.0, "succeeded": True},
                "lessons/02_b": {"mtime": now - 3600, "runtime": 30.0, "succeeded": True}}, now)
    with caplog.at_level("INFO"):
        course_build._report(app)
    text = caplog.text
    assert "executed by this build: 01_a (12 s)" in text
    assert "from the execution cache: 02_b (30 s)" in text


def test_execution_report_fails_on_a_failed_lesson_even_from_an_earlier_build():
    from sphinx.errors import ExtensionError

    app = _app({"lessons/03_c": {"mtime": time.time() - 3600, "runtime": 5.0, "succeeded": False,
                                 "error": "CellExecutionError: ZeroDivisionError"}}, time.time())
    with pytest.raises(ExtensionError, match="03_c: CellExecutionError"):
        course_build._report(app)


def test_mathjax_is_configured_from_the_local_package():
    config = SimpleNamespace(mathjax_path=None, mathjax2_config=None, mathjax3_config={"x": 1})
    offline_mathjax._configure(None, config)
    assert config.mathjax_path.startswith("mathjax/MathJax.js?config=")
    assert config.mathjax3_config is None
    assert "math" in config.mathjax2_config["tex2jax"]["processClass"]
    assert (offline_mathjax.mathjax_source() / "MathJax.js").is_file()
    assert "Apache License" in (offline_mathjax.mathjax_source() / "LICENSE").read_text()
