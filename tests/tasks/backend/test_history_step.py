"""The setup's root steps (tasks/backend/commands.py history_step): the system's Python, isolated,
from `/`, and the deploy-marker script run only as the plain root-owned file the deploy installed."""

import os
import shlex
import subprocess
import sys

import pytest

from tasks.backend.commands import ROOT_SCRIPT, history_step
from tasks.backend.layout import LAYOUT


def test_the_root_step_runs_the_checked_script_isolated_from_slash():
    assert history_step(LAYOUT, "save-migrations", "/srv/sprint2/releases/abc") == (
        f"cd / && /usr/bin/python3 -I -c {shlex.quote(ROOT_SCRIPT)} /etc/sprint2/conf/deploy_marker.py "
        "save-migrations /srv/sprint2/releases/abc /etc/sprint2/migration-history.json sprint2"
    )


def guarded(path, *arguments) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-I", "-c", ROOT_SCRIPT, str(path), *arguments], capture_output=True, text=True, cwd="/"
    )


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "deploy_marker.py"
    path.write_text("import sys\nprint('ran', sys.argv[1:], __name__, __file__)\n")
    path.chmod(0o644)
    return path


def test_a_script_others_may_write_is_not_run(script):
    script.chmod(0o664)
    ran = guarded(script, "save-migrations")
    assert ran.returncode == 1 and "ran" not in ran.stdout
    assert ran.stderr.strip() == f"{script}: not the plain root-owned file the deploy installed: not run as root"


def test_a_link_is_not_followed(script, tmp_path):
    (tmp_path / "link.py").symlink_to(script)
    ran = guarded(tmp_path / "link.py", "save-migrations")
    assert ran.returncode == 1 and "ran" not in ran.stdout
    assert ran.stderr.strip() == f"{tmp_path / 'link.py'}: Too many levels of symbolic links: not run as root"


def test_a_file_of_another_owner_is_not_run(script):
    if os.geteuid() == 0:
        os.chown(script, 65534, 65534)  # nobody's, as a file the app user put there
    ran = guarded(script, "save-migrations")
    assert ran.returncode == 1 and "not the plain root-owned file" in ran.stderr


def test_roots_own_file_runs_as_the_script_with_its_arguments(script):
    ran = guarded(script, "save-migrations", "/srv/x")
    if os.geteuid() != 0:  # a file of this (non-root) user's: refused, as any file not root's
        assert ran.returncode == 1 and "not the plain root-owned file" in ran.stderr
        return
    assert ran.returncode == 0 and ran.stdout.strip() == f"ran ['save-migrations', '/srv/x'] __main__ {script}"
