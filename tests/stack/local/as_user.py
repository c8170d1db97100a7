"""Running provision.py as an ordinary user: `nobody` when the tests run as root (as CI does),
the tests' own user otherwise; against a copy of the code that user can read, with an
interpreter it can run and this environment's packages."""

import os
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stack.settings import PROJECT_ROOT

USER = "nobody"
CODE = ("stack", "tasks", "templates", "files", "provision.py")


def as_user(command: list[str], env: dict[str, str]) -> list[str]:
    """`command` as the test user, with exactly `env` (runuser would set HOME and the like)."""
    with_env = ["/usr/bin/env", "-i", *(f"{key}={value}" for key, value in env.items()), *command]
    if os.geteuid() != 0:
        return with_env
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", USER, "--", *with_env]


def give(path: Path) -> None:
    """Make `path` the test user's (nothing to do when the suite is not root)."""
    if os.geteuid() == 0:
        shutil.chown(path, USER)


@contextmanager
def readable_folder() -> Iterator[Path]:
    """A world-readable folder: pytest's tmp_path is its user's only."""
    folder = Path(tempfile.mkdtemp(prefix="as-user-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def interpreter(env: dict[str, str]) -> str:
    """This Python, or the system's of the same version when the test user may not run this one
    (a pyenv build under /root), with this environment's packages on PYTHONPATH."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, getattr(sys, "_base_executable", sys.executable), f"/usr/bin/{version}"):
        probe = subprocess.run(as_user([candidate, "-c", "import yaml, jinja2"], env), capture_output=True, timeout=30)
        if probe.returncode == 0:
            return candidate
    raise AssertionError(f"{USER} can run no {version} that imports this environment's packages")


def plan_as_user(readable: Path, home: Path, config: str, *command: str) -> subprocess.CompletedProcess:
    """`python provision.py --provider local plan` (or `command`) as the user, DEPLOY_HOME `home`."""
    code = readable / "code"
    for part in CODE:
        source = PROJECT_ROOT / part
        if source.is_dir():
            shutil.copytree(source, code / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            code.mkdir(exist_ok=True)
            shutil.copy(source, code / part)
    (readable / "config.yml").write_text(config)
    env = {
        "PATH": "/usr/bin:/bin",  # an ordinary user's: no /usr/sbin, where iptables lives
        "PYTHONPATH": os.pathsep.join(site.getsitepackages()),
        "DEPLOY_HOME": str(home),
        "DEPLOY_CONFIG": str(readable / "config.yml"),
        "HOME": str(readable),
    }
    return subprocess.run(
        as_user([interpreter(env), "provision.py", "--provider", "local", *(command or ("plan",))], env),
        cwd=code,
        capture_output=True,
        text=True,
        timeout=60,
    )
