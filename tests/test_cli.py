import pytest

from helpers import cli


@pytest.mark.parametrize("month", ["2026-13", "11-2026", "2026-1"])
def test_a_month_that_is_not_one_is_a_usage_error(month, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["report", "--month", month])
    assert stopped.value.code == 2
    assert f"'{month}' is not a month" in capsys.readouterr().err


def test_a_missing_study_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HEARD_ROOT", str(tmp_path))
    assert cli.main(["check", "nosuchstudy"]) == 1
    assert "heard demo" in capsys.readouterr().out
