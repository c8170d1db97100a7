""".ci/run must work on a clean Debian 12 machine: everything it uses comes from its apt line."""

import re
from pathlib import Path

CI_RUN = Path(__file__).resolve().parent.parent / ".ci" / "run"


def apt_packages() -> set[str]:
    text = CI_RUN.read_text().replace("\\\n", " ")
    line = re.search(r"apt-get install ([^\n>]*)", text).group(1)
    return {word for word in line.split() if not word.startswith("-")}


def test_the_venv_it_creates_has_its_packages():
    # Debian's python3 lacks ensurepip without python3-venv: `python3 -m venv` fails on a clean host.
    assert "python3 -m venv" in CI_RUN.read_text()
    assert {"python3", "python3-venv"} <= apt_packages()


def test_the_local_provider_tools_are_installed():
    assert {"debootstrap", "systemd-container", "iptables", "iproute2", "openssh-client", "git"} <= apt_packages()


def test_the_linters_run_before_the_tests_and_a_finding_stops_it():
    text = CI_RUN.read_text()
    assert "set -euo pipefail" in text
    assert "-r requirements-dev.txt" in text  # ruff, mypy and pytest come from there
    steps = [".venv/bin/ruff check .", ".venv/bin/ruff format --check .", ".venv/bin/mypy", ".venv/bin/pytest"]
    lines = [line.strip() for line in text.splitlines()]
    assert all(step in lines for step in steps), lines
    assert [lines.index(step) for step in steps] == sorted(lines.index(step) for step in steps)
