import pytest

from helpers.errors import HeardInputError
from helpers.study import check_month, load_study, merge_config, previous_months


def test_study_config_overrides_defaults_key_by_key(tmp_path):
    raw = tmp_path / "store"
    raw.mkdir()
    (raw / "study.yml").write_text("phones:\n  keep: valid\nstudy:\n  currency: GBP\n")
    study = load_study(raw, root=tmp_path)
    assert study.config["phones"]["keep"] == "valid"
    assert study.config["study"]["currency"] == "GBP"
    assert study.config["study"]["default_country"] == "US"
    assert study.processed("2026-11") == tmp_path / "data/processed/store/2026-11"


def test_broken_yaml_names_the_file_and_line(tmp_path):
    raw = tmp_path / "store"
    raw.mkdir()
    (raw / "study.yml").write_text("study:\n  name: A\n   currency: [GBP\n")
    with pytest.raises(
        HeardInputError, match=r"study\.yml, row \d+: expected valid YAML"
    ):
        load_study(raw, root=tmp_path)


def test_missing_study_says_how_to_fix(tmp_path):
    with pytest.raises(HeardInputError, match="heard demo"):
        load_study("nowhere", root=tmp_path)


def test_merge_config_leaves_inputs_alone():
    base = {"a": {"b": 1, "c": 2}}
    merged = merge_config(base, {"a": {"b": 3}})
    assert merged == {"a": {"b": 3, "c": 2}}
    assert base == {"a": {"b": 1, "c": 2}}


def test_month_format_is_checked():
    assert check_month("2026-11") == "2026-11"
    with pytest.raises(ValueError, match="2026-13"):
        check_month("2026-13")


def test_previous_months_lists_processed_history(tmp_path):
    raw = tmp_path / "store"
    raw.mkdir()
    study = load_study(raw, root=tmp_path)
    for month in ("2026-09", "2026-10", "2026-11", "notes"):
        study.processed_root.joinpath(month).mkdir(parents=True)
    assert previous_months(study, "2026-11") == ["2026-09", "2026-10"]
