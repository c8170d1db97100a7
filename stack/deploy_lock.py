"""The deploy lock: one deploy at a time on a platform, kept on the database host, where every
deploy (from any operator's machine) looks.

deploy.py takes it before any host changes (never with --dry) and gives it back when pyinfra
exits, whether the deploy succeeded or failed. A lock left by a run that could not give it back
(killed with SIGKILL, a laptop that went away) expires after an hour, or `python provision.py
unlock` removes it. Two deploys at once both ran makemigrations and migrate (the second failed
half-way with `relation ... already exists`): the second one now stops before it starts.
"""

import atexit
import getpass
import os
import shlex
import socket
import subprocess
import sys
import time
import uuid

from stack.errors import UserError, exit_with
from stack.operate import session
from stack.operate.commands import as_root, ssh_argv
from stack.operate.hosts import Target, target
from stack.state import load_state

LOCK_FILE = "/var/lib/sprint2-deploy/lock"
EXPIRES_S = 3600
RUN = uuid.uuid4().hex[:12]  # this deploy, as written in the lock it holds

_taken: Target | None = None


def holder(ref: str, now: float | None = None) -> str:
    """What the lock says about its holder: who, from where, when, and what it deploys."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    return f"{getpass.getuser()}@{socket.gethostname()} (pid {os.getpid()}, run {RUN}) deploying {ref} since {when}"


def acquire_script(line: str, expires_s: int = EXPIRES_S) -> str:
    """Create the lock only if there is none (noclobber: atomic), or take over one older than
    `expires_s`. Prints `acquired`, `expired <old holder>` or `held <holder>`."""
    folder, quoted = os.path.dirname(LOCK_FILE), shlex.quote(line)
    return (
        f"mkdir -p {folder} && chmod 700 {folder} && "
        f"if (set -C; printf '%s\\n' {quoted} > {LOCK_FILE}) 2>/dev/null; then echo acquired; "
        f"elif [ $(( $(date +%s) - $(stat -c %Y {LOCK_FILE}) )) -gt {expires_s} ]; then "
        f"echo \"expired $(cat {LOCK_FILE})\"; printf '%s\\n' {quoted} > {LOCK_FILE}; "
        f'else echo "held $(cat {LOCK_FILE})"; fi'
    )


def release_script(run: str = RUN) -> str:
    """Remove the lock only if this run holds it (an expired lock may have been taken over)."""
    return f"if grep -qF {shlex.quote(f'run {run})')} {LOCK_FILE} 2>/dev/null; then rm -f {LOCK_FILE}; fi"


def unlock_script() -> str:
    return f'if [ -f {LOCK_FILE} ]; then echo "released $(cat {LOCK_FILE})"; rm -f {LOCK_FILE}; else echo none; fi'


def database_host() -> Target | None:
    """The db host as ssh reaches it, or None when there is none to lock on yet (nothing recorded,
    or never deployed: its host key is pinned by the first deploy)."""
    state = load_state()
    names = [name for name, host in state.hosts.items() if host.role == "db"] if state else []
    if not state or not names:
        return None
    try:
        return target(names[0], state.hosts[names[0]], state.provider)
    except UserError:
        return None


def _run(host: Target, script: str) -> str:
    with session.ssh_log() as log:
        completed = subprocess.run(
            ssh_argv(host, [as_root(host, f"sh -c {shlex.quote(script)}")], log_file=log),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        # ssh's own failure (no answer, key refused, host key changed) in the operate commands' words.
        problem = session.failure(host, completed.returncode, log)
    if problem or completed.returncode != 0:
        raise UserError(
            f"cannot read the deploy lock on {host.name}: "
            f"{problem or (completed.stderr.strip().splitlines() or ['no message'])[-1]}"
        )
    return completed.stdout.strip()


def take(ref: str) -> None:
    """Take the lock for this pyinfra run (once, whatever the number of hosts), or stop in one line."""
    global _taken
    if _taken is not None or "--dry" in sys.argv:
        return
    host = database_host()
    if host is None:
        return
    _taken = host
    try:
        answer = _run(host, acquire_script(holder(ref)))
    except subprocess.TimeoutExpired:
        exit_with(
            UserError(
                f"the database host {host.name} did not answer for the deploy lock within 60 s: "
                "is it running? (python provision.py status)"
            )
        )
    except UserError as error:
        exit_with(error)
    if answer.startswith("held "):
        _taken = None
        exit_with(
            UserError(
                f"another deploy holds the lock on {host.name}: {answer[5:]}; wait for it to end, "
                f"or if that run is dead: python provision.py unlock"
            )
        )
    if answer.startswith("expired "):
        print(f"deploy lock: took over an expired lock ({answer[8:]})", file=sys.stderr)
    atexit.register(give_back)


def give_back() -> None:
    if _taken is not None:
        try:
            _run(_taken, release_script())
        except (UserError, subprocess.SubprocessError, OSError):
            pass  # it expires; `provision.py unlock` removes it sooner


def unlock() -> int:
    """python provision.py unlock: remove the lock whoever holds it (a run that died)."""
    host = database_host()
    if host is None:
        raise UserError("no deployed database host is recorded: there is no deploy lock")
    answer = _run(host, unlock_script())
    print(f"deploy lock {answer}" if answer != "none" else "no deploy lock is held")
    return 0
