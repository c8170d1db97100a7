"""Release locks and uv: what a release's virtualenv holds, resolved once, installed the same everywhere.

A release's lock is the app's requirements plus the deploy's additions (files/backend/constraints.txt:
gunicorn, psycopg2-binary, whitenoise, each pinned, added only when the app lacks it), resolved by
uv into exact versions with the hashes of every file of each version (`--universal`: one lock for
every Python and platform the hosts may run). It is resolved on one backend, as the app user (a
resolution may build an sdist: the app's code, never root's), once per requirements text; the
controller keeps it (`<DEPLOY_HOME>/locks/<commit>.txt`) and every backend installs that same file
(`uv pip sync --require-hashes`), so two backends, or the same release rebuilt next month on a new
host, hold the same bytes. A virtualenv is named by its lock's content.

uv itself is one pinned wheel from PyPI, checked against its SHA-256 and unpacked by root into
root's folder (`Layout.uv`), run only as the app user. Where no uv wheel fits the host (not
x86_64 or aarch64) the virtualenv is built by pip from the same lock (`--require-hashes`), and the
lock must be resolved on a host where uv runs.

Pure builders here; the operations are in tasks/backend/operations.py.
"""

import hashlib
import re
import shlex
from pathlib import Path

from stack.settings import PROJECT_ROOT
from stack.state import private_dir
from tasks.backend.commands import as_app
from tasks.backend.layout import UV_VERSION, Layout
from tasks.backend.render import extra_requirements
from tasks.packages import install_command

CONSTRAINTS = PROJECT_ROOT / "files" / "backend" / "constraints.txt"
_FILES = "https://files.pythonhosted.org/packages"
# The wheel for each machine type `uname -m` names, and its SHA-256 (PyPI's own).
UV_WHEELS = {
    "x86_64": (
        f"{_FILES}/3d/aa/26d64642d808de4a652579ef950d7cd2d37f080a8babf9c67c6b75fc4c3f/"
        f"uv-{UV_VERSION}-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
    ),
    "aarch64": (
        f"{_FILES}/fe/2f/51a5de367c602592c018a42a23d57fba5f2689fe6c3bf025dcf043b39c61/"
        f"uv-{UV_VERSION}-py3-none-manylinux_2_28_aarch64.whl",
        "ecb6028d79dc96fbeafffe5c8af62a7099487ebc05a701e76714eebcffd06375",
    ),
}
# What the lock file's header names as its maker (uv prints it; a fixed text keeps locks of the
# same input identical whoever resolved them).
COMPILE_COMMAND = "the deploy's release lock (tasks/backend/lock.py)"
LOCK_BYTES = 1 << 20

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==")


def pins(constraints: str) -> dict[str, str]:
    """{normalised name: its `name==version` line} of the constraints file."""
    found = {}
    for line in constraints.splitlines():
        text = line.split("#", 1)[0].strip()
        match = _PIN.match(text)
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = text
    return found


def additions(requirements: str, constraints: str) -> list[str]:
    """The pinned lines the deploy adds to these requirements."""
    pinned = pins(constraints)
    missing = [name for name in extra_requirements(requirements) if name not in pinned]
    if missing:
        raise ValueError(f"{CONSTRAINTS}: no pin for {', '.join(missing)}")
    return [pinned[name] for name in extra_requirements(requirements)]


def lock_input(requirements: str, constraints: str) -> str:
    """What is resolved: the app's requirements, then the deploy's pinned additions."""
    added = additions(requirements, constraints)
    return f"{requirements.rstrip()}\n{''.join(line + chr(10) for line in added)}".lstrip("\n")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def uv_env(layout: Layout) -> str:
    """uv as the app user: its cache in the app's home (shared by every release: a package is
    downloaded once and hard-linked into each virtualenv), no config file read, no Python downloaded,
    the host's certificate store trusted (as pip and apt do there; uv's own roots would refuse a
    TLS-inspecting proxy the host trusts)."""
    return (
        f"env HOME={layout.home} UV_CACHE_DIR={layout.uv_cache} UV_NO_CONFIG=1 UV_PYTHON_DOWNLOADS=never "
        f"UV_NO_PROGRESS=1 UV_SYSTEM_CERTS=1 {layout.uv}"
    )


UV_INSTALL = (
    "import hashlib, io, os, sys, urllib.request, zipfile\n"
    "url, digest, dest = sys.argv[1:4]\n"
    "data = urllib.request.urlopen(url, timeout=120).read()\n"
    "if hashlib.sha256(data).hexdigest() != digest:\n"
    "    sys.exit(f'{url}: SHA-256 is not {digest}: uv not installed')\n"
    "with zipfile.ZipFile(io.BytesIO(data)) as wheel:\n"
    "    binary = wheel.read(next(name for name in wheel.namelist() if name.endswith('.data/scripts/uv')))\n"
    "os.makedirs(os.path.dirname(dest), mode=0o755, exist_ok=True)\n"
    "fd = os.open(dest + '.new', os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o755)\n"
    "with os.fdopen(fd, 'wb') as out:\n"
    "    out.write(binary)\n"
    "os.chmod(dest + '.new', 0o755)\n"
    "os.replace(dest + '.new', dest)\n"
)


def uv_installed(layout: Layout) -> str:
    """A command installing the pinned uv into root's folder unless it is there: the wheel for this
    machine type, checked against its SHA-256 before anything is unpacked; no wheel for this machine
    type: nothing (the build falls back to pip)."""
    cases = " ".join(
        f"{machine}) /usr/bin/python3 -I -c {shlex.quote(UV_INSTALL)} {url} {sha} {layout.uv};;"
        for machine, (url, sha) in UV_WHEELS.items()
    )
    return f"[ -x {layout.uv} ] || case $(uname -m) in {cases} *) ;; esac"


def lock_paths(layout: Layout, key: str) -> tuple[str, str]:
    """(the resolver's input, the lock) on the resolving backend, in the app user's folder."""
    return f"{layout.locks_work}/{key}.in", f"{layout.locks_work}/{key}.txt"


def resolve(layout: Layout, commit: str, requirements: str | None, constraints: str) -> tuple[str, str]:
    """(the command that resolves `commit`'s lock on this backend unless it holds it already, the
    lock's path). The input is the commit's requirements.txt as git has it (not the work tree's,
    the app user's to change) and the pinned additions."""
    app, git = as_app(layout), f"{as_app(layout)} git --git-dir={layout.repo}"
    key = digest(lock_input(requirements or "", constraints))
    source, lock = lock_paths(layout, key)
    added = " ".join(shlex.quote(line) for line in additions(requirements or "", constraints))
    app_part = f"{git} show {commit}:requirements.txt; echo; " if requirements else ""
    compile_ = (
        f"{app} {uv_env(layout)} pip compile --quiet --universal --generate-hashes --python /usr/bin/python3 "
        f"--custom-compile-command {shlex.quote(COMPILE_COMMAND)} -o {lock}.new {source} && "
        f"{app} mv -f {lock}.new {lock}"
    )
    return (
        f"{app} mkdir -p {layout.locks_work} && if ! {app} test -s {lock}; then "
        f"{{ {app_part}printf '%s\\n' {added}; }} | {app} tee {source} > /dev/null && {compile_}; fi"
    ), lock


def venv_built(layout: Layout, lock: str, venv: str) -> str:
    """A command building `venv` afresh from the lock file `lock` (root's copy), as the app user:
    uv when it runs here, else pip with the same lock and hashes."""
    app = as_app(layout)
    uv = f"{app} {uv_env(layout)}"
    return (
        f"{app} rm -rf {venv} && {app} mkdir -p {layout.venvs} && "
        f"if {app} {layout.uv} --version > /dev/null 2>&1; then "
        f"{uv} venv --quiet --python /usr/bin/python3 {venv} && "
        f"{uv} pip sync --quiet --require-hashes --python {venv}/bin/python {lock}; "
        f"else {{ /usr/bin/python3 -I -c 'import ensurepip' 2> /dev/null || {install_command(['python3-venv'])}; }} && "
        f"{app} python3 -m venv {venv} && {app} {venv}/bin/pip install --quiet --disable-pip-version-check "
        f"--require-hashes --no-deps -r {lock}; fi"
    )


def kept_path(commit: str) -> Path:
    return private_dir("locks") / f"{commit}.txt"


def kept_lock(commit: str) -> str | None:
    """The lock the controller keeps for `commit`, if any."""
    path = kept_path(commit)
    return path.read_text() if path.is_file() else None


def keep_lock(commit: str, text: str) -> None:
    path = kept_path(commit)
    temporary = path.with_suffix(".new")
    temporary.write_text(text)
    temporary.replace(path)
