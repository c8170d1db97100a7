"""Facts and operations for the Django backends that pyinfra does not do idempotently as-is.

pyinfra 3 runs an operation's body when the operation executes, so each one here reads the host
at that moment and yields no command when there is nothing to do: a converged host reports no change. Commands of the app
itself go through the run helper (stack/render/backend.py), which loads the root-only
environment file, so no secret is ever in a command line.
"""

import hashlib
import json
import re
import shlex
from io import StringIO

from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, operation
from pyinfra.context import state
from pyinfra.facts.files import File, Sha256File

from stack.render.backend import LAYOUT, Layout

HEX = re.compile(r"[0-9a-f]{7,40}")


def log_event(layout: Layout, message: str) -> str:
    """A command appending one line to the deploy log (/var/log/backend.log)."""
    line = shlex.quote(message)
    return f"printf '%s %s\\n' \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" {line} >> {layout.deploy_log}"


def fail(message: str) -> str:
    """A command that fails the operation with one line: pyinfra prints it under the host's name
    (raising in an operation would print a traceback instead)."""
    return f"echo {shlex.quote(message)} >&2; exit 1"


def as_app(layout: Layout) -> str:
    """The prefix that runs a command as the app user (its files, its processes)."""
    return f"runuser -u {layout.user} --"


def write_as_app(layout: Layout, text: str, path: str) -> str:
    """A command writing `text` to `path` as the app user: its folders (releases, venvs) are the app
    user's, and root writing there would follow a link that user planted anywhere on the host.
    The old file goes first: deploys before this one wrote it as root."""
    app = as_app(layout)
    return f"{app} rm -f {path} && echo {shlex.quote(text)} | {app} tee {path} > /dev/null"


def run_app(layout: Layout, command: str, quiet: bool = False, release: str | None = None) -> str:
    """The run helper's command line for one app command: in the live release, or in `release`."""
    options = (" --quiet" if quiet else "") + (f" --in {release}" if release else "")
    return f"{layout.run_helper}{options} {shlex.quote(command)}"


# --- facts --------------------------------------------------------------------------------------


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


class DeployMarkers(FactBase):
    """The deploy's markers stored in the application database (files/deploy_marker.py), read with one
    start of Django from `release` (a built one: it runs before any is live):
    {"markers": {name: value}} or {"error": last line} when it cannot be read."""

    def command(self, release, layout=LAYOUT):
        query = run_app(layout, f"python {layout.marker_script} list", quiet=True, release=release)
        return (f"if [ -x {layout.run_helper} ] && [ -x {release}/.venv/bin/python ]; "
                f"then {query} 2>&1 || echo 'marker failed'; else echo 'marker unavailable'; fi")

    def process(self, output):
        lines = [line for line in output if line.strip()]
        if lines and lines[-1] == "marker unavailable":
            return {"error": "the app is not installed yet"}
        if lines and lines[-1] == "marker failed":
            return {"error": lines[-2] if len(lines) > 1 else "unknown error"}
        try:
            markers = json.loads(lines[-1]) if lines else {}
        except ValueError:
            return {"error": lines[-1]}
        return {"markers": markers if isinstance(markers, dict) else {}}

    @staticmethod
    def default():
        return {"markers": {}}


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
def check_health(address: str, port: int, path: str, backend: str, statuses: list[int]):
    """GET the health path like Kong's probes do; fail the deploy unless it answers one of `statuses`
    (gateway.active.healthy_statuses: the deploy and Kong agree on what healthy means).

    Reads only: it yields no command, so it never counts as a change.
    """
    if not state.is_executing:
        host.noop(f"{path} is checked after the deploy")
        return
    status = host.get_fact(HttpStatus, address=address, port=port, path=path)
    if status in statuses:
        host.noop(f"{path} answered {status}")
        return
    logs = f"its error log: journalctl -u {LAYOUT.service}, {LAYOUT.django_log}"
    if not isinstance(status, int):
        hint = f"the app does not answer; see {logs}"
    elif status >= 500:
        hint = f"the app fails on this path; see {logs}"
    elif status == 404:
        hint = ("set gateway.health_path to a path this commit serves (Sprint2 commits after b0abfcb answer 404 "
                "or 500 on /despachos/reporte/; /health-check/ answers 200), or pin app_ref")
    else:
        hint = f"set gateway.health_path to a path answering {' or '.join(map(str, statuses))}"
    yield fail(f"{backend}: health check GET {path} answered {status}; {hint}")
