"""The backends' command lines, as pure text: the run helper, the app user, the health probe, the trial run.

Nothing here reads a host; the operations yield these. Commands of the app itself go through the
run helper (tasks/backend/render.py), which loads the root-only environment file, so no secret is
ever in a command line.
"""

import hashlib
import shlex

from tasks.backend.layout import Layout


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


def populate_marker(command: str) -> str:
    """Each populate command's own marker (64 characters at most, the column's size)."""
    return "populate:" + hashlib.sha256(command.encode()).hexdigest()[:32]


def marker_script(layout: Layout, action: str) -> str:
    """The deploy-marker script's `action`, as the app (through the run helper: its venv, its role)."""
    return f"python {layout.marker_script} {action}"


def history_credentials(layout: Layout) -> str:
    """The root-only file with the deploy-only role's login, on the setup backend during a setup."""
    return f"{layout.config_root}/migration-history.json"


# Root runs the script only as the file root installed: a plain file (not a link) owned by root
# that no one else may write. Its folder may sit inside one the app user owns (until the deploy's
# files move under a root-owned parent), where that user could rename folders: whatever they put
# at that path is theirs (refused), and a file of root's cannot be moved out of root's folder.
ROOT_SCRIPT = (
    "import os, stat, sys\n"
    "sys.argv = sys.argv[1:]\n"
    "try:\n"
    "    fd = os.open(sys.argv[0], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)\n"
    "except OSError as error:\n"
    "    sys.exit(f'{sys.argv[0]}: {error.strerror}: not run as root')\n"
    "info = os.fstat(fd)\n"
    "if not stat.S_ISREG(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:\n"
    "    sys.exit(sys.argv[0] + ': not the plain root-owned file the deploy installed: not run as root')\n"
    "with os.fdopen(fd, 'rb') as script:\n"
    "    code = compile(script.read(), sys.argv[0], 'exec')\n"
    "exec(code, {'__name__': '__main__', '__file__': sys.argv[0]})\n"
)


def history_step(layout: Layout, action: str, release: str) -> str:
    """The deploy-marker script's save-migrations / restore-migrations as root: the system's Python
    in isolated mode (no PYTHONPATH, no user site, not the script's folder), from `/`, so no file
    of the app's is imported, and the script checked first (ROOT_SCRIPT); the files themselves are
    read and written by its child as the app user."""
    return (
        f"cd / && /usr/bin/python3 -I -c {shlex.quote(ROOT_SCRIPT)} {layout.marker_script} {action} {release} "
        f"{history_credentials(layout)} {layout.user}"
    )


def wrapped(steps: list[str], why: str) -> str:
    """Run `steps` in order; when one fails, print `why` with the run helper's one line in it."""
    return f'if reason=$({{ {" && ".join(steps)}; }} 2>&1 >/dev/null); then :; else echo "{why}" >&2; exit 1; fi'


HEALTH_PROBE = (
    "import http.client, sys, time\n"
    "address, port, path, statuses = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]\n"
    "wait = float(sys.argv[5])\n"
    "deadline, status, wrong = time.time() + wait, 'no answer', 0\n"
    "while time.time() < deadline and wrong < 3:\n"
    "    try:\n"
    "        connection = http.client.HTTPConnection(address, port, timeout=10)\n"
    "        connection.request('GET', path, headers={'Host': address})\n"
    "        status = connection.getresponse().status\n"
    "        if str(status) in statuses.split(','):\n"
    "            print(status)\n"
    "            sys.exit(0)\n"
    "        wrong += 1\n"
    "    except OSError as error:\n"
    "        status = 'no answer (%s)' % error\n"
    "    time.sleep(1)\n"
    "print(status)\n"
    "sys.exit(1)\n"
)
# Not answering yet is waited for (up to `wait` s: a release starting); three answers with an
# unhealthy status are final, as for Kong's active checks (unhealthy.http_failures).


def wait_healthy(address: str, port: int, path: str, statuses: list[int], seconds: int) -> str:
    """A command that waits until GET `path` answers one of `statuses`; prints the last status."""
    return (
        f"python3 -c {shlex.quote(HEALTH_PROBE)} {address} {port} {shlex.quote(path)} "
        f"{','.join(map(str, statuses))} {seconds}"
    )


def trial_port(port: int) -> int:
    return port + 10000 if port <= 55535 else port - 10000


def trial_run(
    name: str, layout: Layout, release: str, commit: str, port: int, path: str, statuses: list[int], wait: int
) -> str:
    """A command that starts `release` in a gunicorn of its own on 127.0.0.1:<trial port> (one
    worker, the deploy's settings and secrets), asks its health path, stops it, and fails in one
    line when it did not answer healthy. Nothing the clients reach is touched."""
    trial, pidfile = trial_port(port), layout.trial_pid
    gunicorn = (
        f"exec gunicorn --config {layout.gunicorn_conf} --bind 127.0.0.1:{trial} --workers 1 "
        f"--pid {pidfile} {layout.app_package}.wsgi:application"
    )
    probe = wait_healthy("127.0.0.1", trial, path, statuses, wait)
    # Whatever still listens on the trial port (a master that never wrote its pid file); not a
    # pattern match on command lines, which would also match this command's own shell.
    # Killed as the app user: the pid file is that user's to write, and root must not kill what it
    # names; read as that user too (root following a link there would read anything), digits only.
    kill = f"{as_app(layout)} kill"
    leftover = (
        f"for pid in $(ss -Hltnp 'sport = :{trial}' | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); "
        f"do {kill} $pid; done"
    )
    return (
        f"{as_app(layout)} rm -f {pidfile}; "
        f"{run_app(layout, gunicorn, quiet=True, release=release)} > /dev/null 2>&1 & "
        f"if status=$({probe}); then healthy=yes; else healthy=no; fi; "
        f"pid=$({as_app(layout)} head -c 16 {pidfile} 2>/dev/null); "
        f"case $pid in ''|*[!0-9]*) ;; *) {kill} $pid 2>/dev/null;; esac; {leftover}; wait; "
        f'if [ $healthy = no ]; then echo "{name}: release {commit[:12]} answered $status on {path} '
        f"(tried on 127.0.0.1:{trial}, beside the running release); nothing switched; the roll stopped "
        f'here" >&2; exit 1; fi'
    )
