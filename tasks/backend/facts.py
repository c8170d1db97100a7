"""What a backend has: the app's repository and releases, files, the database's deploy markers, health.

Each fact builds one command and parses its output; none changes the host.
"""

import json
import re
import shlex

from pyinfra.api import FactBase

from tasks.backend.commands import as_app, run_app
from tasks.backend.layout import LAYOUT

HEX = re.compile(r"[0-9a-f]{7,40}")
COMMIT = re.compile(r"[0-9a-f]{40}")


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


NO_FILE = "<no such file>"


def _text(output) -> str | None:
    """A file's text from its lines as a shell printed them, None for NO_FILE."""
    lines = list(output)
    if lines == [NO_FILE]:
        return None
    return "\n".join(lines) + "\n"


class AppFileText(FactBase):
    """The text of a small file of the app user's (a build stamp, the releases' history), at most
    `limit` bytes of it (its last ones with `end`), or None when it is not a regular file the app
    user can read. Read as the app user, never by root: root following a link planted there would
    read anything on the host (a root-only file), or never end (/proc/kcore); `timeout`: a file
    swapped for a FIFO after the check."""

    def command(self, path, limit, end=False):
        read = f"timeout 10 {'tail' if end else 'head'} -c {int(limit)}"
        missing = f"echo {shlex.quote(NO_FILE)}"
        script = f'if [ -f "$1" ]; then {read} -- "$1" 2>/dev/null || {missing}; else {missing}; fi'
        return f"{as_app(LAYOUT)} sh -c {shlex.quote(script)} sh {shlex.quote(path)}"

    def process(self, output):
        lines = list(output)
        return None if NO_FILE in lines else _text(lines)


class CommitFile(FactBase):
    """The text of `path` in `commit` of the mirror `repo` (at most `limit` bytes), or None when the
    commit has no such file: what the commit says, whatever its release's work tree holds now. git
    runs as the app user (the mirror is that user's)."""

    def command(self, repo, commit, path, limit):
        script = (
            'if git --git-dir="$1" cat-file -e "$2:$3" 2>/dev/null; then git --git-dir="$1" show "$2:$3" | '
            f"head -c {int(limit)}; else echo {shlex.quote(NO_FILE)}; fi"
        )
        quoted = " ".join(shlex.quote(value) for value in (repo, commit, path))
        return f"{as_app(LAYOUT)} sh -c {shlex.quote(script)} sh {quoted}"

    def process(self, output):
        return _text(output)


class SystemAccount(FactBase):
    """The user `account` and the group `account`, looked up alone (pyinfra's Users fact reads every user
    and runs lastlog for each, ~0.5 s): {"user": {"uid", "gid", "home", "shell"} or None, "group":
    the group's gid or None}."""

    def command(self, account):
        return f'echo "group=$(getent group {account})"; echo "user=$(getent passwd {account})"'

    def process(self, output):
        values = dict(line.split("=", 1) for line in output if "=" in line)
        group = values.get("group", "").split(":")
        user = values.get("user", "").split(":")
        return {
            "user": {"uid": int(user[2]), "gid": int(user[3]), "home": user[5], "shell": user[6]}
            if len(user) == 7
            else None,
            "group": int(group[2]) if len(group) == 4 else None,
        }

    @staticmethod
    def default():
        return {"user": None, "group": None}


class DeployMarkers(FactBase):
    """The deploy's markers stored in the application database (files/backend/deploy_marker.py), read with one
    start of Django from `release` (a built one: it runs before any is live):
    {"markers": {name: value}} or {"error": last line} when it cannot be read."""

    def command(self, release):
        layout = LAYOUT
        query = run_app(layout, f"python {layout.marker_script} list", quiet=True, release=release)
        return (
            f"if [ -x {layout.run_helper} ] && [ -x {release}/.venv/bin/python ]; "
            f"then {query} 2>&1 || echo 'marker failed'; else echo 'marker unavailable'; fi"
        )

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
    without following redirects. Waits up to 30 s for the port to open (a restarted service).
    bash's /dev/tcp, not Python: a deploy that changes nothing asks it on every backend, and a
    Python start costs each ~50 ms of CPU more (issue 12)."""

    PROBE = (
        "while [ $SECONDS -lt 30 ]; do "
        'if { printf \'GET %s HTTP/1.0\\r\\nHost: %s\\r\\n\\r\\n\' "$2" "$0" >&3 && '
        'read -r -t 10 _ status _ <&3 && echo "$status"; } 3<>"/dev/tcp/$0/$1"; then exit; fi; '
        "sleep 1; done 2>/dev/null; "
        'echo "no answer within 30 s"'
    )

    def command(self, address, port, path):
        return f"bash -c {shlex.quote(self.PROBE)} {address} {port} {shlex.quote(path)}"

    def process(self, output):
        text = " ".join(output).strip()
        return int(text) if text.isdigit() else text


class MirrorCommit(FactBase):
    """{"origin": url, "commit": what `ref` names in the mirror (a branch, a tag or a commit id) or
    None}, or None when there is no mirror."""

    def requires_command(self, repo, ref):
        return "git"

    def command(self, repo, ref):
        # git as the app user, whose mirror it is: root reading that user's git config would run
        # what it names (core.fsmonitor, ...); one runuser for all the names.
        names = [f"refs/heads/{ref}^{{commit}}", f"refs/tags/{ref}^{{commit}}", f"{ref}^{{commit}}"]
        script = (
            'git="git --git-dir=$0"; $git config remote.origin.url || exit 0; '
            'for name in "$@"; do $git rev-parse --verify --quiet "$name" && exit 0; done; true'
        )
        quoted = " ".join(shlex.quote(value) for value in (repo, *names))
        return f"if [ -d {repo} ]; then {as_app(LAYOUT)} sh -c {shlex.quote(script)} {quoted}; fi"

    def process(self, output):
        lines = [line.strip() for line in output if line.strip()]
        if not lines:
            return None
        commit = lines[1] if len(lines) > 1 and HEX.fullmatch(lines[1]) else None
        return {"origin": lines[0], "commit": commit}


class VenvWorks(FactBase):
    """Whether the virtualenv at `path` runs: its python starts and imports gunicorn, and its
    bin/gunicorn is there (a stamp alone would notice neither a removed interpreter nor a deleted
    bin/gunicorn). `import gunicorn` takes 16 ms where `gunicorn --version` took 95 ms, on every
    backend of every run (issue 12). Run as the app user: the virtualenv is that user's, and root
    must not run code it could change."""

    def command(self, path):
        return (
            f"test -x {path}/bin/gunicorn && {as_app(LAYOUT)} {path}/bin/python -c 'import gunicorn' >/dev/null 2>&1 "
            "&& echo works || echo broken"
        )

    def process(self, output):
        return list(output)[-1:] == ["works"]


class ServiceRelease(FactBase):
    """What a backend serves: {"current": the release `current` names, "running": the release the
    running gunicorn was started in (its working directory), "socket": whether systemd holds the port}.
    One `systemctl show` for the service and its socket (each systemctl costs a backend ~15 ms of
    CPU, on every run: issue 12); it prints a block per unit in the order asked, the service's first."""

    def command(self, current, service):
        return (
            f"echo current=$(readlink -f {current} 2>/dev/null); "
            f"systemctl show --property MainPID,ActiveState {service}.service {service}.socket 2>/dev/null | "
            "while IFS='=' read -r key value; do case $key in "
            'MainPID) [ "$value" != 0 ] && echo "running=$(readlink /proc/$value/cwd)";; '
            'ActiveState) echo "state=$value";; esac; done; true'
        )

    def process(self, output):
        lines = [line.split("=", 1) for line in output if "=" in line]
        values = {key: value for key, value in lines if key != "state"}
        states = [value for key, value in lines if key == "state"]  # the service's, then the socket's
        return {
            "current": values.get("current") or None,
            "running": values.get("running") or None,
            "socket": len(states) > 1 and states[1] == "active",
        }


class Directories(FactBase):
    """Those of `paths` that are directories, in the order given (one command for them all)."""

    def command(self, paths):
        names = " ".join(shlex.quote(path) for path in paths)
        return f'for path in {names}; do [ -d "$path" ] && echo "$path"; done; true'

    def process(self, output):
        return [line.strip() for line in output if line.strip()]

    @staticmethod
    def default():
        return []


class BuiltReleases(FactBase):
    """The built releases, newest first: [commit, ...] (by the time each was completed)."""

    def command(self, releases):
        return (
            f"if [ -d {releases} ]; then find {releases} -mindepth 2 -maxdepth 2 -name .deploy-built "
            "-printf '%T@ %h\\n' | sort -rn; fi"
        )

    def process(self, output):
        # Only full commit ids: the folder is the app user's, and a release name goes into root's
        # commands (prune, rollback); anything else planted there is ignored.
        names = [line.split()[1].rsplit("/", 1)[-1] for line in output if len(line.split()) == 2]
        return [name for name in names if COMMIT.fullmatch(name)]

    @staticmethod
    def default():
        return []
