"""The lessons never type a measured number into their prose.

A number the book reports (an accuracy, a percentage, a duration, a speed-up) must come from a computed
value: a ``{glue:text}`` role, a code cell's output or a rendered table. This test reads every lesson's
MyST source, removes what may hold numbers legitimately (the front matter, code cells and other fenced
blocks, display and inline math, inline code, roles such as ``{glue:text}`` or ``{cite}``, link targets),
and fails on any measurement left in the prose, with its line.

Definitions are not measurements: image sizes (``32 x 32``), class and image counts, kernel sizes are
allowed, and so is a short list of fixed phrases (``ALLOWED``). A hyperparameter belongs in inline code
(``bias_scaler=64``) or math (``$\\alpha = 0.2$``).

Run: ``pytest tests/test_book_prose.py`` (no build needed, under a second).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "lessons").glob("[0-9][0-9]_*.md"))

_NUM = r"\d+(?:[.,]\d+)*"
_WORD_NUM = (r"(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
             r"hundred|a hundred|several|many)")
# What a measurement looks like in prose.
PATTERNS = {
    "percentage": re.compile(rf"(?<![\w.]){_NUM}\s*(?:%|percent\b|per cent\b|pp\b|points?\b)", re.I),
    "duration": re.compile(rf"(?<![\w.]){_NUM}\s*(?:-\s*)?(?:ms|s|sec|secs|seconds?|min|mins|minutes?|h|hours?)\b",
                           re.I),
    "ratio": re.compile(rf"(?<![\w.]){_NUM}\s*(?:×|x)(?=[\s,.;:)]|$)(?!\s*\d)|(?<![\w.]){_NUM}-fold\b|"
                        rf"\b{_WORD_NUM}\s+times\s+(?:faster|slower|larger|smaller|more|fewer|less|higher|lower|"
                        rf"as\s+\w+|the)\b|\btwice\s+as\s+\w+|\b(?:doubles|halves|triples)\b", re.I),
    "fraction": re.compile(r"(?<![\w.$])0\.\d{2,}(?![\w.])"),
    "speed": re.compile(rf"(?<![\w.]){_NUM}\s*(?:img|images?|examples?|samples?)\s*/\s*s\b", re.I),
    "size": re.compile(rf"(?<![\w.]){_NUM}\s*(?:kB|KB|MB|GB|MiB|GiB)\b"),
}

# Definitions and fixed facts that look like measurements. Keep this list short.
ALLOWED = (
    re.compile(rf"(?<![\w.]){_NUM}\s*(?:x|×)\s*{_NUM}(?:\s*(?:x|×)\s*{_NUM})?"),  # 32 x 32, 3x3, 2×2 kernels
    re.compile(r"\b10\s*%\s+(?:of|for)\s+(?:random\s+)?guess", re.I),            # chance level of 10 classes
    re.compile(r"\bq75\b|\bJPEG quality 75\b", re.I),
)

# Parts of MyST source that are not prose.
_STRIP = (
    re.compile(r"\A---\n.*?\n---\n", re.S),                                     # front matter
    re.compile(r"^(`{3,}|~{3,}).*?^\1\s*$", re.S | re.M),                        # fenced blocks, code cells
    re.compile(r"^:::+\{(?:math|code-block|code)\}.*?^:::+\s*$", re.S | re.M),  # math / code directives
    re.compile(r"\$\$.*?\$\$", re.S),                                           # display math
    re.compile(r"(?<![\\\w])\$[^$\n]+?\$"),                                     # inline math
    re.compile(r"\{[\w:-]+\}`[^`]*`"),                                           # roles: {glue:text}, {cite}, ...
    re.compile(r"``[^`]+``|`[^`\n]+`"),                                          # inline code
    re.compile(r"\]\([^)]*\)"),                                                  # link targets
    re.compile(r"<!--.*?-->", re.S),                                             # comments
)


def prose_lines(source: str) -> list[tuple[int, str]]:
    """``(line number, text)`` of the prose of a MyST lesson, everything else blanked out.

    Stripped parts are replaced by spaces and newlines so that line numbers stay those of the source.
    """
    def blank(match):
        return re.sub(r"[^\n]", " ", match.group(0))

    for pattern in _STRIP:
        source = pattern.sub(blank, source)
    return [(i, line) for i, line in enumerate(source.splitlines(), start=1) if line.strip()]


def find_measurements(text: str) -> list[tuple[str, str]]:
    """The hard-coded measurements in one line of prose: ``[(kind, matched text), ...]``."""
    for allowed in ALLOWED:
        text = allowed.sub(lambda m: " " * len(m.group(0)), text)
    hits = []
    for kind, pattern in PATTERNS.items():
        hits.extend((kind, m.group(0).strip()) for m in pattern.finditer(text))
    return hits


# ------------------------------------------------------------------------------------------------
# The detector itself
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, kinds", [
    ("the model reached 93.4% after training", {"percentage"}),
    ("it took 5 minutes on two cores", {"duration"}),
    ("training took 95 s per epoch", {"duration"}),
    ("the fast recipe is 16× faster", {"ratio"}),
    ("about twenty times slower than width 16", {"ratio"}),
    ("a 2.4x speed-up", {"ratio"}),
    ("test accuracy 0.903 on the mirror", {"fraction"}),
    ("about 1,500 img/s on a CPU", {"speed"}),
    ("a 4.0 MB file", {"size"}),
    ("gains of 3 points over the baseline", {"percentage"}),
])
def test_detector_flags_measurements(text, kinds):
    assert {kind for kind, _ in find_measurements(text)} == kinds


@pytest.mark.parametrize("text", [
    "CIFAR-10 has 50,000 training and 10,000 test images in 10 classes",
    "each image is 32 x 32 pixels, 32×32 RGB, seen through a 3x3 convolution",
    "a 2×2 patch-whitening layer",
    "well above the 10 % of guessing",
    "the JPEG q75 mirror",
    "lesson 3 trains 45,000 images at batch 512",
])
def test_detector_allows_definitions(text):
    assert find_measurements(text) == []


def test_code_math_and_roles_are_not_prose():
    source = ("---\nfront: 0.99\n---\n# Title\n\n```{code-cell} ipython3\nprint('93%')\n```\n\n"
              "Accuracy {glue:text}`acc:.1%` after $0.5$ s, with `lr=0.25` and\n\n$$p = 0.25$$\n\n"
              "Reached 88% here.\n")
    lines = prose_lines(source)
    flagged = [(n, find_measurements(t)) for n, t in lines if find_measurements(t)]
    assert flagged == [(14, [("percentage", "88%")])]


# ------------------------------------------------------------------------------------------------
# The lessons
# ------------------------------------------------------------------------------------------------


def test_all_nine_lessons_are_checked():
    assert len(LESSONS) == 9, [p.name for p in LESSONS]


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_prose_has_no_hard_coded_measurement(lesson):
    problems = []
    for number, text in prose_lines(lesson.read_text(encoding="utf-8")):
        for kind, value in find_measurements(text):
            problems.append(f"{lesson.name}:{number}: {kind} {value!r} in: {text.strip()[:120]}")
    assert not problems, ("measured numbers typed into the prose (use myst-nb glue and {glue:text}, or a table):\n"
                          + "\n".join(problems))


# ------------------------------------------------------------------------------------------------
# Display equations: the math is derived in the text, not only named
# ------------------------------------------------------------------------------------------------

_DISPLAY_MATH = re.compile(r"^\$\$.*?\$\$|^(`{3,}|:{3,})\{math\}.*?^\1", re.S | re.M)


def display_equations(source: str) -> int:
    """The number of display equations (``$$ ... $$`` blocks and ``{math}`` directives) outside code cells."""
    source = re.sub(r"^(`{3,})\{code-cell\}.*?^\1\s*$", "", source, flags=re.S | re.M)
    return len(_DISPLAY_MATH.findall(source))


def test_display_equation_counter():
    assert display_equations("text\n\n$$\na = b\n$$\n\n```{math}\nc\n```\n\n```{code-cell} ipython3\n$$x$$\n```\n") == 2


def test_the_book_derives_its_math():
    counts = {p.stem: display_equations(p.read_text(encoding="utf-8")) for p in LESSONS}
    first_four = sum(n for name, n in counts.items() if name[:2] in ("01", "02", "03", "04"))
    assert first_four >= 14, f"lessons 1-4 hold {first_four} display equations, want >= 14: {counts}"
    assert sum(counts.values()) >= 25, f"the lessons hold {sum(counts.values())} display equations, want >= 25: {counts}"
