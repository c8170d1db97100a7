"""A test run leaves nothing in the temporary folder: moto's scratch folder goes at the end, and
passing tests' tmp_path folders go too (pytest keeps only a failed test's, to look into)."""

import getpass
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The AWS tests' conftest makes moto's scratch folder; the state tests write into tmp_path.
SAMPLE = ["tests/stack/aws/test_wait.py", "tests/stack/test_state.py"]


def test_a_passing_run_leaves_no_folder_behind(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SAMPLE],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    left = sorted(str(path.relative_to(scratch)) for path in scratch.rglob("*"))
    # pytest's per-user folder stays (empty): every run shares it.
    assert left in ([], [f"pytest-of-{getpass.getuser()}"]), left
