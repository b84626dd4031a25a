import re
import subprocess
import tomllib

import pytest
import yaml

from conftest import REPO


def requirement_name(requirement: str) -> str:
    name = re.split(r"[<>=!~\[ ]", requirement.strip(), maxsplit=1)[0]
    return name.lower().replace("_", "-")


def test_environment_yml_lists_every_pyproject_dependency():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    conda, pip = [], []
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            pip.extend(entry["pip"])
        else:
            conda.append(entry)
    listed = {requirement_name(r) for r in conda + pip if not r.startswith("-e")}
    wanted = {requirement_name(r) for r in project["dependencies"]}
    assert wanted - listed == set()
    assert listed - wanted == {"python", "quarto", "pip"}
    assert "-e .[dev]" in pip


@pytest.mark.parametrize(
    "path",
    [
        "data/raw/demo/exports/2026-11/orders_export.csv",
        "data/processed/demo/2026-11/customers_customer.parquet",
        ".heard/pseudonym.key",
        "reports/_output/demo/2026-11/monthly-2026-11.pdf",
    ],
)
def test_git_ignores_customer_data_and_the_key(path):
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, check=False
    )
    assert result.returncode == 0, f"{path} would be committed"


def test_folder_readmes_stay_tracked():
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", "data/raw/README.md"],
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 1


def test_no_customer_data_is_committed():
    tracked = subprocess.run(
        ["git", "ls-files", "data"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert set(tracked) <= {"data/raw/README.md", "data/processed/README.md"}
