"""The study folder: where raw and processed files live, and the study's rules.

A study is one store's research programme. Everything a person collects sits under
``data/raw/<study>/`` and is never edited by Heard; everything Heard derives sits
under ``data/processed/<study>/<YYYY-MM>/`` and can be rebuilt from raw.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from helpers.errors import HeardInputError

MONTH_PATTERN = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
DEFAULT_STUDY = "demo"


@dataclass(frozen=True)
class Study:
    """One study: its name, its folders and its merged configuration.

    Parameters
    ----------
    name : str
        The study's folder name, used in processed paths and report titles.
    raw_dir : Path
        ``data/raw/<study>``: read-only input.
    processed_root : Path
        ``data/processed/<study>``: one sub-folder per month.
    config : dict
        ``defaults.yml`` overlaid with the study's ``study.yml``.
    """

    name: str
    raw_dir: Path
    processed_root: Path
    config: dict = field(repr=False)

    def raw(self, *parts: str) -> Path:
        """Return a path inside the raw study folder."""
        return self.raw_dir.joinpath(*parts)

    def processed(self, month: str, *parts: str) -> Path:
        """Return a path inside the month's processed folder (not created)."""
        check_month(month)
        return self.processed_root.joinpath(month, *parts)

    def month_config(self, month: str) -> dict:
        """Return the month's block of ``months:`` (question, segments, …)."""
        check_month(month)
        return self.config.get("months", {}).get(month, {})

    def months(self) -> list[str]:
        """Return the months the study has configured, oldest first."""
        return sorted(self.config.get("months", {}))


def find_project_root(start: Path | None = None) -> Path:
    """Return the Heard project folder: ``$HEARD_ROOT`` or the nearest parent of
    `start` (default: the working directory) that holds ``_quarto.yml``."""
    if os.environ.get("HEARD_ROOT"):
        return Path(os.environ["HEARD_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_quarto.yml").exists():
            return folder
    return here


def load_study(
    study: str | Path = DEFAULT_STUDY,
    *,
    root: Path | None = None,
    processed_root: Path | None = None,
) -> Study:
    """Load a study by name (``data/raw/<name>``) or by the path of its raw folder.

    Parameters
    ----------
    study : str or Path
        A study name under the project's ``data/raw``, or a folder path.
    root : Path, optional
        The project folder; found from the working directory when omitted.
    processed_root : Path, optional
        Where processed files go; ``data/processed/<name>`` when omitted.

    Returns
    -------
    Study

    Raises
    ------
    HeardInputError
        When the folder is missing or its ``study.yml`` is not a YAML mapping.
    """
    root = root or find_project_root()
    raw_dir = Path(study)
    if not raw_dir.is_absolute() and not raw_dir.exists():
        raw_dir = root / "data" / "raw" / str(study)
    if not raw_dir.is_dir():
        raise HeardInputError(
            raw_dir,
            expected="a study folder",
            found="nothing there",
            fix="run `heard demo` for the demo study, or give the path of a study "
            "folder laid out as in docs/study-folder.md",
        )
    name = raw_dir.name
    config = merge_config(load_defaults(), read_study_config(raw_dir / "study.yml"))
    processed_root = processed_root or root / "data" / "processed" / name
    return Study(name, raw_dir.resolve(), Path(processed_root), config)


def load_defaults() -> dict:
    """Return Heard's default study configuration."""
    text = resources.files("helpers").joinpath("defaults.yml").read_text("utf-8")
    return yaml.safe_load(text)


def read_study_config(path: Path) -> dict:
    """Read a ``study.yml``; a missing file means all defaults."""
    if not path.exists():
        return {}
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise HeardInputError(
            path,
            row=mark.line + 1 if mark else None,
            expected="valid YAML",
            found=str(getattr(error, "problem", error)),
            fix="correct the indentation or quoting on that line",
        ) from error
    if not isinstance(config, dict):
        raise HeardInputError(
            path, expected="a mapping of settings", found=type(config).__name__
        )
    return config


def merge_config(base: dict, override: dict) -> dict:
    """Return `base` with `override` laid over it, nested mappings merged."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_config(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def check_month(month: str) -> str:
    """Return `month` when it is ``YYYY-MM``; raise ValueError otherwise."""
    if not isinstance(month, str) or not MONTH_PATTERN.match(month):
        raise ValueError(f"month must look like 2026-11, got {month!r}")
    return month


def previous_months(study: Study, month: str) -> list[str]:
    """Return the months before `month` that have processed outputs, oldest first."""
    check_month(month)
    if not study.processed_root.is_dir():
        return []
    found = [p.name for p in study.processed_root.iterdir() if p.is_dir()]
    return sorted(m for m in found if MONTH_PATTERN.match(m) and m < month)
