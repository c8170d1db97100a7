"""Facts and operations for the Django backends that pyinfra does not do idempotently as-is.

pyinfra 3 runs an operation's body when the operation executes, so each one here reads the host
at that moment (the checkout after the clone, the requirements of the new commit) and yields no
command when there is nothing to do: a converged host reports no change. Commands of the app
itself go through the run helper (stack/render/backend.py), which loads the root-only
environment file, so no secret is ever in a command line.
"""

import hashlib
import re
import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, operation
from pyinfra.context import state
from pyinfra.facts.files import File, Sha256File

from stack.render.backend import LAYOUT, Layout, extra_requirements

HEX = re.compile(r"^[0-9a-f]{7,40}$")


def log_event(layout: Layout, message: str) -> str:
    """A command appending one line to the deploy log (/var/log/backend.log)."""
    line = shlex.quote(message)
    return f"printf '%s %s\\n' \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" {line} >> {layout.deploy_log}"


def fail(message: str) -> str:
    """A command that fails the operation with one line: pyinfra prints it under the host's name
    (raising in an operation would print a traceback instead)."""
    return f"echo {shlex.quote(message)} >&2; exit 1"


def write_as_app(layout: Layout, text: str, path: str) -> str:
    """A command writing `text` to `path` as the app user: its folders (venv, static) are the app
    user's, and root writing there would follow a link that user planted anywhere on the host.
    The old file goes first: deploys before this one wrote it as root."""
    as_app = f"runuser -u {layout.user} --"
    return f"{as_app} rm -f {path} && echo {shlex.quote(text)} | {as_app} tee {path} > /dev/null"


def run_app(layout: Layout, command: str, quiet: bool = False) -> str:
    return f"{layout.run_helper}{' --quiet' if quiet else ''} {shlex.quote(command)}"


# --- facts --------------------------------------------------------------------------------------


class GitCheckout(FactBase):
    """{"commit": sha, "origin": url} of the checkout at `path`, or None when there is none."""

    def requires_command(self, path):
        return "git"

    def command(self, path):
        git = f"git -c safe.directory={path} -C {path}"
        return f"if [ -d {path}/.git ]; then {git} rev-parse HEAD && {git} remote get-url origin; fi"

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if len(lines) < 2 or not HEX.match(lines[0]):
            return None
        return {"commit": lines[0], "origin": lines[1]}


class GitRemoteRef(FactBase):
    """The commit `ref` names in `repo` (branch or tag, tags peeled), "" if it names none,
    or {"error": text} when the repository cannot be read from this host."""

    def requires_command(self, repo, ref):
        return "git"

    def command(self, repo, ref):
        quoted = [shlex.quote(value) for value in (repo, ref, f"{ref}^{{}}")]
        return f"GIT_TERMINAL_PROMPT=0 git ls-remote -- {' '.join(quoted)} 2>&1 || echo 'ls-remote failed'"

    def process(self, output):
        refs = {}
        for line in output:
            if "\t" in line:
                sha, name = line.split("\t", 1)
                refs[name.strip()] = sha.strip()
            elif line.strip() == "ls-remote failed":
                return {"error": " ".join(part.strip() for part in output if part.strip() != "ls-remote failed")}
        return refs

    @staticmethod
    def default():
        return {}


def resolve_ref(refs: dict, ref: str) -> str | None:
    """The commit for `ref` among ls-remote's answers: a peeled tag, a tag, a branch, then HEAD-like names."""
    for name in (f"refs/tags/{ref}^{{}}", f"refs/tags/{ref}", f"refs/heads/{ref}", ref):
        if name in refs:
            return refs[name]
    return None


class FileText(FactBase):
    """The text of a small file, or None when it does not exist."""

    def command(self, path):
        return f"if [ -f {path} ]; then cat {path}; else echo '<no such file>'; fi"

    def process(self, output):
        if list(output) == ["<no such file>"]:
            return None
        return "\n".join(output) + "\n"


class VenvRuns(FactBase):
    """True when the virtualenv's python and gunicorn both start, False when either does not
    (a deleted bin/gunicorn, a venv of a removed python), None when there is no virtualenv.
    Run as the app user: the venv is that user's, and root must not run code it could change."""

    def command(self, layout=LAYOUT):
        as_app = f"runuser -u {layout.user} --"
        return (f"if [ ! -e {layout.venv} ]; then echo absent; "
                f"elif {as_app} {layout.venv}/bin/python -c '' >/dev/null 2>&1 && "
                f"{as_app} {layout.venv}/bin/gunicorn --version >/dev/null 2>&1; then echo runs; else echo broken; fi")

    def process(self, output):
        answer = " ".join(output).strip()
        return None if answer == "absent" else answer == "runs"


class DeployMarker(FactBase):
    """A marker stored in the application database (files/deploy_marker.py):
    {"value": text or None} or {"error": last line} when the database cannot be read."""

    def command(self, marker, layout=LAYOUT):
        query = run_app(layout, f"python {layout.marker_script} get {marker}", quiet=True)
        return (f"if [ -x {layout.run_helper} ] && [ -x {layout.venv}/bin/python ]; "
                f"then {query} 2>&1 || echo 'marker failed'; else echo 'marker unavailable'; fi")

    def process(self, output):
        lines = [line for line in output if line.strip()]
        if lines and lines[-1] == "marker unavailable":
            return {"error": "the app is not installed yet"}
        if lines and lines[-1] == "marker failed":
            return {"error": lines[-2] if len(lines) > 1 else "unknown error"}
        return {"value": lines[-1].strip() if lines else None}

    @staticmethod
    def default():
        return {"value": None}


class HttpStatus(FactBase):
    """The status of GET http://address:port/path with Host: address (as Kong's probes send it),
    without following redirects. Waits up to 30 s for the port to open (a restarted service)."""

    PROBE = (
        "import http.client, sys, time\n"
        "address, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
        "deadline = time.time() + 30\n"
        "while True:\n"
        "    try:\n"
        "        connection = http.client.HTTPConnection(address, port, timeout=10)\n"
        "        connection.request('GET', path, headers={'Host': address})\n"
        "        print(connection.getresponse().status)\n"
        "        break\n"
        "    except OSError as error:\n"
        "        if time.time() > deadline:\n"
        "            print('no answer: %s' % error)\n"
        "            break\n"
        "        time.sleep(1)\n"
    )

    def command(self, address, port, path):
        return f"python3 -c {shlex.quote(self.PROBE)} {address} {port} {shlex.quote(path)}"

    def process(self, output):
        text = " ".join(output).strip()
        return int(text) if text.isdigit() else text


# --- operations ---------------------------------------------------------------------------------


@operation()
def secret_file(path: str, content: str, user: str = "root", group: str = "root", mode: str = "600"):
    """Like files.put, but never prints the content (no --diff of secrets) and the file is
    created with its final mode before the secret is written into it."""
    info = host.get_fact(File, path=path)
    digest = hashlib.sha256(content.encode()).hexdigest()
    if info and host.get_fact(Sha256File, path=path) == digest and (
        info.get("user"), info.get("group"), info.get("mode")) == (user, group, int(mode)):
        host.noop(f"{path} is up to date")
        return
    yield f"install -m {mode} -o {user} -g {group} /dev/null {path}.new"
    temporary = host.get_temp_filename(path)
    ssh_user = host.data.get("ssh_user")
    if ssh_user and ssh_user != "root":
        # With sudo, pyinfra uploads to a temporary file first (SFTP as the SSH user) and copies it:
        # create that file private beforehand, so the secret is never world-readable in /tmp.
        yield f"install -m 600 -o {ssh_user} /dev/null {temporary}"
    yield FileUploadCommand(StringIO(content), f"{path}.new", remote_temp_filename=temporary)
    yield f"chmod {mode} {path}.new && chown {user}:{group} {path}.new && mv -f {path}.new {path}"


@operation()
def app_checkout(repo: str, ref: str, layout: Layout = LAYOUT, setup_by: str | None = None):
    """Check out `ref` (branch, tag or commit) of `repo` in the app folder, as the app user.

    Already at that commit: no change (pyinfra's git.repo re-runs checkout for tags and commits).
    A branch follows its newest commit; a commit can be given in full or abbreviated.
    `setup_by`: the backend that migrates, when this run does not reach it; then the checkout
    moves only to a commit the database is already set up for.
    """
    path = layout.checkout
    current = host.get_fact(GitCheckout, path=path)
    refs = host.get_fact(GitRemoteRef, repo=repo, ref=ref)
    if not state.is_executing and (current is None or refs.get("error")):
        # Previewing a host that has no git or no checkout yet: it will be cloned.
        host.noop(f"{repo} is cloned at {ref} once git is installed")
        return
    if isinstance(refs, dict) and refs.get("error"):
        yield fail(f"{host.name}: cannot read app_repo {repo}: {refs['error']}")
        return
    target = resolve_ref(refs, ref)
    if target is None and not HEX.match(ref):
        yield fail(f"{host.name}: app_ref {ref!r} is neither a branch nor a tag of {repo}, nor a commit id")
        return
    wanted = target or ref
    if current and current["commit"].startswith(wanted) and current["origin"] == repo:
        host.noop(f"{path} is at {current['commit'][:12]} ({ref})")
        return
    if setup_by:
        migrated_for = host.get_fact(DeployMarker, marker="setup").get("value") or ""
        if not migrated_for.startswith(wanted):
            yield fail(f"{host.name}: the database is not set up for {wanted[:12]} and {setup_by}, which runs the "
                       f"migrations, is not in this run: deploy both (e.g. --limit backends)")
            return
    git = f"runuser -u {layout.user} -- git"
    if current is None:
        yield f"rm -rf {path} && {git} clone --quiet --no-checkout {shlex.quote(repo)} {path}"
    else:
        if current["origin"] != repo:
            yield f"{git} -C {path} remote set-url origin {shlex.quote(repo)}"
        yield f"{git} -C {path} fetch --quiet --tags --force origin"
    # --force: tracked files are the repository's (the deploy never edits them); untracked files,
    # such as the migrations makemigrations wrote, are kept.
    yield f"{git} -C {path} checkout --quiet --force --detach {wanted}"
    yield log_event(layout, f"checked out {ref} = {wanted[:12]} from {repo}")


@operation()
def app_virtualenv(layout: Layout = LAYOUT):
    """Create the virtualenv and install the app's requirements (plus gunicorn and psycopg2 if it
    lacks them), again only when requirements.txt changed (its hash is kept in the venv), or from
    scratch when the venv's python or gunicorn does not run (pip would call a package whose files
    were deleted installed, and the stamp alone says nothing about the files)."""
    requirements_path = f"{layout.checkout}/requirements.txt"
    requirements = host.get_fact(FileText, path=requirements_path)
    if requirements is None and not state.is_executing:
        host.noop("the requirements are installed after the checkout")
        return
    extras = extra_requirements(requirements or "")
    wanted = hashlib.sha256(f"{requirements}\n{extras}".encode()).hexdigest()
    stamp = host.get_fact(FileText, path=layout.requirements_stamp)
    runs = host.get_fact(VenvRuns)
    if stamp and stamp.strip() == wanted and runs is not False:
        host.noop("the requirements are installed")
        return
    as_app = f"runuser -u {layout.user} --"
    pip = f"{as_app} {layout.venv}/bin/pip install --quiet --disable-pip-version-check"
    if runs is False:
        yield f"rm -rf {layout.venv} && {as_app} python3 -m venv {layout.venv}"
    else:
        yield f"test -x {layout.venv}/bin/python || {as_app} python3 -m venv {layout.venv}"
    if requirements is not None:
        yield f"{pip} -r {requirements_path}"
    if extras:
        yield f"{pip} {' '.join(shlex.quote(extra) for extra in extras)}"
    yield write_as_app(layout, wanted, layout.requirements_stamp)
    rebuilt = "rebuilt the virtualenv (its python or gunicorn did not run), " if runs is False else ""
    yield log_event(layout, f"{rebuilt}installed the requirements" + (f" and {', '.join(extras)}" if extras else ""))


@operation()
def app_collectstatic(layout: Layout = LAYOUT):
    """collectstatic once per commit (whitenoise serves the result)."""
    checkout = host.get_fact(GitCheckout, path=layout.checkout)
    if checkout is None:
        if state.is_executing:
            yield fail(f"{host.name}: no checkout in {layout.checkout}")
            return
        host.noop("static files are collected after the checkout")
        return
    stamp = host.get_fact(FileText, path=layout.static_stamp)
    if stamp and stamp.strip() == checkout["commit"]:
        host.noop(f"static files of {checkout['commit'][:12]} are collected")
        return
    yield run_app(layout, "python manage.py collectstatic --noinput")
    yield write_as_app(layout, checkout['commit'], layout.static_stamp)


@operation()
def app_setup(commands: list[str], layout: Layout = LAYOUT):
    """The app's setup commands (makemigrations, migrate) when the database was not yet set up
    for the checked-out commit; the commit is then recorded in the database."""
    checkout = host.get_fact(GitCheckout, path=layout.checkout)
    marker = host.get_fact(DeployMarker, marker="setup")
    if not state.is_executing and (checkout is None or marker.get("error")):
        host.noop("the setup commands run after the install")
        return
    if checkout is None:
        yield fail(f"{host.name}: no checkout in {layout.checkout}")
        return
    if marker.get("error"):
        yield fail(f"{host.name}: cannot read the deploy marker from the database: {marker['error']}")
        return
    if marker.get("value") == checkout["commit"]:
        host.noop(f"the database is set up for {checkout['commit'][:12]}")
        return
    for command in commands:
        yield run_app(layout, command)
    yield run_app(layout, f"python {layout.marker_script} set setup {checkout['commit']}")


@operation()
def app_populate(commands: list[str], layout: Layout = LAYOUT):
    """The populate commands, once in the life of the database (a marker in the database itself,
    so neither a redeploy nor a new backend runs them again)."""
    marker = host.get_fact(DeployMarker, marker="populated")
    if marker.get("error"):
        if state.is_executing:
            yield fail(f"{host.name}: cannot read the deploy marker from the database: {marker['error']}")
            return
        host.noop("the populate commands run after the install, once")
        return
    if marker.get("value"):
        host.noop(f"the database was populated ({marker['value']})")
        return
    for command in commands:
        yield run_app(layout, command)
    yield run_app(layout, f"python {layout.marker_script} set populated by-{host.data.get('name') or host.name}")


@operation()
def check_health(address: str, port: int, path: str, backend: str):
    """GET the health path like Kong's probes do; fail the deploy unless it answers 200 or 302.

    Reads only: it yields no command, so it never counts as a change.
    """
    if not state.is_executing:
        host.noop(f"{path} is checked after the deploy")
        return
    status = host.get_fact(HttpStatus, address=address, port=port, path=path)
    if status in (200, 302):
        host.noop(f"{path} answered {status}")
        return
    hint = ("set gateway.health_path to a path this commit serves (the newest Sprint2 commit "
            "answers 404 on /despachos/reporte/; /health-check/ answers 200), or pin app_ref")
    if not isinstance(status, int):
        hint = f"the app does not answer: journalctl -u {LAYOUT.service}, /var/log/django.log"
    yield fail(f"{backend}: health check GET {path} answered {status}; {hint}")
