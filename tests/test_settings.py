"""Study settings are checked before a step runs, each naming its line in study.yml."""

from __future__ import annotations

import pytest
import yaml

from helpers.checks import check_study
from helpers.settings import check_settings, setting_lines
from helpers.study import load_defaults, merge_config

MONTH = "2026-11"


def problems_for(tmp_path, text: str) -> list:
    path = tmp_path / "study.yml"
    path.write_text(text)
    config = merge_config(load_defaults(), yaml.safe_load(text) or {})
    return check_settings(config, path)


def test_the_defaults_are_sound(tmp_path):
    assert check_settings(load_defaults(), tmp_path / "study.yml") == []


@pytest.mark.parametrize(
    ("text", "setting", "found"),
    [
        ("study:\n  timezone: Mars/Olympus\n", "study.timezone", "Mars/Olympus"),
        ("study:\n  default_country: USA\n", "study.default_country", "USA"),
        ("study:\n  store_opened: last spring\n", "study.store_opened", "last spring"),
        ("sampling:\n  expected_connect_rate: 35\n",
         "sampling.expected_connect_rate", "35"),
        ("sampling:\n  holdout_share: 1\n", "sampling.holdout_share", "1"),
        ("sampling:\n  target_conversations: 0\n",
         "sampling.target_conversations", "0"),
        ("phones:\n  keep: all\n", "phones.keep", "all"),
        ("calling_window:\n  start: 9am\n", "calling_window.start", "9am"),
        ("segments:\n  lifecycle_bands: [30, 90]\n",
         "segments.lifecycle_bands", "[30, 90]"),
        ("exports:\n  decimal: comma\n", "exports.decimal", "comma"),
    ],
)  # fmt: skip
def test_a_setting_no_step_could_use_is_named_with_its_line(
    tmp_path, text, setting, found
):
    [problem] = problems_for(tmp_path, text)
    assert (problem.column, problem.row) == (setting, 2)
    assert str(problem.found) == found
    assert problem.file == str(tmp_path / "study.yml") and setting in problem.fix


def test_a_calling_window_must_end_after_it_starts(tmp_path):
    [problem] = problems_for(
        tmp_path, "calling_window:\n  start: '20:00'\n  end: '09:00'\n"
    )
    assert (problem.column, problem.row, problem.found) == (
        "calling_window.end", 3, "09:00",
    )  # fmt: skip


def test_a_month_naming_an_undefined_segment_is_an_error(tmp_path):
    text = (
        f'months:\n  "{MONTH}":\n    question: Why?\n'
        "    segments: [cart_abandoners, lifecycle_30-89d, abandoners]\n"
    )
    [problem] = problems_for(tmp_path, text)
    assert (problem.column, problem.row, problem.found) == (
        f"months.{MONTH}.segments", 4, "abandoners",
    )  # fmt: skip
    assert "cart_abandoners" in problem.expected


def test_a_rule_switched_off_is_no_longer_a_segment(tmp_path):
    text = f'segments:\n  rules:\n    churned: null\nmonths:\n  "{MONTH}":\n'
    text += "    segments: [churned]\n"
    [problem] = problems_for(tmp_path, text)
    assert problem.found == "churned"


def test_setting_lines_follow_nesting(tmp_path):
    path = tmp_path / "study.yml"
    path.write_text("study:\n  name: A\n\nsampling:\n  seed: 1\n")
    assert setting_lines(path) == {
        "study": 1, "study.name": 2, "sampling": 4, "sampling.seed": 5,
    }  # fmt: skip
    assert setting_lines(tmp_path / "missing.yml") == {}


def test_heard_check_reports_bad_settings_and_warns_without_months(tmp_path):
    folder = tmp_path / "data" / "raw" / "shop"
    folder.mkdir(parents=True)
    (folder / "study.yml").write_text("study:\n  timezone: Europe/Londn\n")
    problems = check_study(folder, root=tmp_path)
    [error] = [p for p in problems if p.severity == "error"]
    assert (error.step, error.column, error.row) == ("settings", "study.timezone", 2)
    warnings = [p.message for p in problems if p.severity == "warning"]
    assert any("no months configured" in text for text in warnings)


def test_heard_check_names_an_unusable_key_and_never_creates_one(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "raw" / "shop"
    folder.mkdir(parents=True)
    (folder / "study.yml").write_text("study:\n  name: Shop\n")
    key = tmp_path / "keys" / "pseudonym.key"
    monkeypatch.setenv("HEARD_KEY_FILE", str(key))

    def errors() -> list:
        return [p for p in check_study(folder, root=tmp_path) if p.severity == "error"]

    assert errors() == []
    assert not key.exists(), "a check must not create the key"
    key.parent.mkdir()
    key.write_text("")
    [error] = errors()
    assert (error.step, error.file) == ("settings", str(key))
    assert error.found == "0 characters"
