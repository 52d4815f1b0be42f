"""``python -m visiondl_keras grade``: grade a class's exercises, or reset ``exercises/`` to the stubs.

Thin translation of the command line into :mod:`visiondl_keras.course.grading`: ``grade SUBMISSIONS_DIR``
calls :func:`~visiondl_keras.course.grading.grade_class`, ``--reset`` calls
:func:`~visiondl_keras.course.grading.reset_exercises` and ``--write-stubs`` (maintainers)
:func:`~visiondl_keras.course.grading.write_stubs` (and the points table of ``exercises/README.md``). Folders default to ``./exercises`` and ``./solutions``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from visiondl_keras.cli.common import quiet_parent
from visiondl_keras.course.grading import (
    STUBS_DIR,
    grade_class,
    reset_exercises,
    write_points_table,
    write_stubs,
)


def _write_stubs(args: argparse.Namespace) -> int:
    exercises = Path(args.exercises_dir or "exercises")
    written = write_stubs(Path(args.solutions_dir or "solutions"), [exercises, STUBS_DIR])
    readme = exercises / "README.md"
    table = readme.is_file() and write_points_table(readme, exercises)
    if not args.quiet:
        print(f"wrote {len(written)} stub files" + (f"; updated the points table in {readme}" if table else ""))
    return 0


def _reset(args: argparse.Namespace) -> int:
    folder = Path(args.exercises_dir or "exercises")
    changed = reset_exercises(folder, args.only, backup=not args.no_backup)
    if not args.quiet:
        kept = " (previous versions in .backup/)" if changed and not args.no_backup else ""
        print(f"reset {len(changed)} file(s) in {folder}{kept}")
        for path in changed:
            print(f"  {path.name}")
    return 0


def _student_copy(args: argparse.Namespace) -> int:
    from visiondl_keras.course.student_copy import write_student_copy

    info = write_student_copy(Path.cwd(), args.student_copy, STUBS_DIR)
    if not args.quiet:
        print(f"wrote a student copy to {info['dest']} ({info['files']} files, exercises reset to the stubs; "
              f"left out: {len(info['left_out'])} instructor files, among them solutions/, and the git history)")
    return 0


def _grade(args: argparse.Namespace) -> int:
    rows = grade_class(args.submissions, args.out, tests_dir=args.tests, timeout=args.timeout,
                       submission_timeout=args.submission_timeout, jobs=args.jobs, quiet=args.quiet)
    if not args.quiet:
        print(f"graded {len(rows)} submission(s): {args.out}")
    return 0


def register(subparsers) -> None:
    """Add the ``grade`` command."""
    p = subparsers.add_parser(
        "grade",
        parents=[quiet_parent()],
        help="grade a class's exercises, or reset exercises/ to the stubs",
        description="Grade a class's exercises (one folder or .zip per student), or reset exercises/ to the stubs.",
        epilog="Examples: python -m visiondl_keras grade submissions/ --out gradebook.csv | "
        "python -m visiondl_keras grade --reset --only ex03",
    )
    p.add_argument("submissions", nargs="?", metavar="SUBMISSIONS_DIR",
                   help="folder with one folder (or .zip) per student")
    p.add_argument("--out", default="gradebook.csv",
                   help="gradebook CSV to write (default gradebook.csv; details in .json beside it)")
    p.add_argument("--tests", help="folder of the graded tests (default: ./exercises)")
    p.add_argument("--timeout", type=float, default=20.0, help="CPU seconds each test may use (default 20)")
    p.add_argument("--submission-timeout", type=float, default=600.0,
                   help="seconds for one student's whole run (default 600)")
    p.add_argument("--jobs", type=int, default=1, help="students graded in parallel (default 1)")
    p.add_argument("--reset", action="store_true", help="copy the pristine stubs over exercises/exNN_*.py")
    p.add_argument("--only", nargs="+", metavar="NAME", help="with --reset: only these exercises (ex03 or ex03_schedules)")
    p.add_argument("--exercises-dir", help="with --reset or --write-stubs: the exercises folder (default ./exercises)")
    p.add_argument("--no-backup", action="store_true", help="with --reset: do not keep a copy of the files it overwrites")
    p.add_argument("--write-stubs", action="store_true",
                   help="maintainers: regenerate the stubs (exercises/ and the packaged copy) from the solutions")
    p.add_argument("--solutions-dir", help="with --write-stubs: the solutions folder (default ./solutions)")
    p.add_argument("--student-copy", metavar="DEST",
                   help="write a copy of this repository for students into DEST: no solutions/, no mutants or "
                   "meta-tests, no git history, exercises/ reset to the stubs")

    def run(args: argparse.Namespace) -> int:
        if args.student_copy:
            return _student_copy(args)
        if args.write_stubs:
            return _write_stubs(args)
        if args.reset:
            return _reset(args)
        if not args.submissions:
            p.error("give SUBMISSIONS_DIR to grade, or --reset")
        return _grade(args)

    p.set_defaults(func=run)
