"""The ``heard`` command: demo study, checks and the monthly report."""

from __future__ import annotations

import argparse
import logging
import sys

from helpers.errors import HeardInputError
from helpers.study import DEFAULT_STUDY, check_month, find_project_root

DEFAULT_MONTH = "2026-11"


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="heard", description="Customer-conversation research, month by month."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="write the demo study into data/raw/demo")
    demo.add_argument("--force", action="store_true", help="rewrite an existing demo")

    check = commands.add_parser("check", help="validate a study folder")
    check.add_argument("study", nargs="?", default=DEFAULT_STUDY)
    check.add_argument(
        "--month", default=None, type=month_argument, help="check one month only"
    )

    report = commands.add_parser("report", help="run every step and render the report")
    report.add_argument(
        "--study", default=DEFAULT_STUDY, help="a folder under data/raw (default: demo)"
    )
    report.add_argument(
        "--month",
        default=DEFAULT_MONTH,
        type=month_argument,
        help=f"YYYY-MM (default: {DEFAULT_MONTH}); earlier months are built first",
    )
    report.add_argument(
        "--renderer",
        choices=["auto", "quarto", "fallback"],
        default="auto",
        help="quarto when it is on PATH, else the PyPI fallback (default: auto)",
    )
    report.add_argument(
        "--fresh", action="store_true", help="re-execute notebooks even if unchanged"
    )
    return parser


def month_argument(text: str) -> str:
    """Return `text` when it is a month ``YYYY-MM``; else a usage error."""
    try:
        return check_month(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a month: write it as YYYY-MM with 01-12, e.g. 2026-11"
        ) from None


def main(argv: list[str] | None = None) -> int:
    """Run the ``heard`` command; return its exit code."""
    arguments = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if arguments.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return run(arguments)
    except HeardInputError as error:
        print(f"heard: {error}", file=sys.stderr)
        return 2


def run(arguments: argparse.Namespace) -> int:
    """Dispatch one sub-command."""
    root = find_project_root()
    if arguments.command == "demo":
        from helpers.demo import write_demo_study

        folder = root / "data" / "raw" / "demo"
        if folder.exists() and not arguments.force:
            print(f"the demo study is already in {folder}; --force rewrites it")
            return 0
        print(f"demo study written to {write_demo_study(folder, force=True)}")
        return 0
    if arguments.command == "check":
        from helpers.checks import check_study, format_problems

        problems = check_study(arguments.study, month=arguments.month, root=root)
        print(format_problems(problems))
        return 1 if any(p.severity == "error" for p in problems) else 0
    from helpers.report import build_report

    outputs = build_report(
        arguments.study,
        arguments.month,
        root=root,
        renderer=arguments.renderer,
        fresh=arguments.fresh,
    )
    print(
        f"{arguments.month} PDF:  {outputs.pdf}\n{arguments.month} Site: {outputs.site}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
