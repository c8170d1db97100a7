"""The deploy lock: one deploy at a time on a platform, kept on the database host, where every
deploy (from any operator's machine) looks.

deploy.py takes it before any host changes (never with --dry) and gives it back when its last
operation has run, or when pyinfra exits, whether the deploy succeeded or failed. When the run
has a connection to the database host, the lock is taken and given back after the last operation
through it (no second SSH handshake on a deploy's critical path: ~0.25 s each, issue 12); else,
and at exit, through OpenSSH (a `--limit` without the database host, a run that stopped early).
A lock left by a run that could not give it back (killed with SIGKILL, a laptop that went away)
expires after an hour, or `python provision.py unlock` removes it. Two deploys at once both ran
makemigrations and migrate (the second failed half-way with `relation ... already exists`): the
second one now stops before it starts.
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
from typing import Any, ClassVar

from pyinfra.api import StringCommand
from pyinfra.api.state import BaseStateCallback

from stack.errors import UserError, exit_with
from stack.operate import session
from stack.operate.commands import as_root, ssh_argv
from stack.operate.hosts import Target, target
from stack.state import load_state

LOCK_FILE = "/var/lib/sprint2-deploy/lock"
EXPIRES_S = 3600
RUN = uuid.uuid4().hex[:12]  # this deploy, as written in the lock it holds

_taken: Any = None  # where the lock is held: a Target (OpenSSH) or a pyinfra Host


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


def connected_database_host(inventory) -> Any:
    """The database host of this pyinfra run when pyinfra holds a connection to it, else None."""
    hosts = inventory.get_group("db", [])
    return hosts[0] if hosts and hosts[0].connected else None


def _run_on(host: Any, script: str) -> str:
    """`script` as root through pyinfra's connection to `host` (a pyinfra Host)."""
    ok, output = host.run_shell_command(StringCommand(script), _sudo=bool(host.data.get("_sudo")))
    if not ok:
        raise UserError(f"cannot read the deploy lock on {host.name}: {(output.stderr_lines or ['no message'])[-1]}")
    return output.stdout.strip()


def _run_at(where: Any, script: str) -> str:
    return _run(where, script) if isinstance(where, Target) else _run_on(where, script)


class _GiveBackAfterTheLastOperation(BaseStateCallback):
    """Gives the lock back through pyinfra's connection once the run's last operation has ended."""

    last: ClassVar[list[str]] = []  # the last operation's hash, once known

    @staticmethod
    def operation_end(state, op_hash):
        last = _GiveBackAfterTheLastOperation.last
        if not last:
            last.append(state.get_op_order()[-1])
        if op_hash == last[0]:
            give_back(through_pyinfra=True)


def take(ref: str, pyinfra_state: Any = None) -> None:
    """Take the lock for this pyinfra run (once, whatever the number of hosts), or stop in one line.
    With the run's pyinfra state, through its connection to the database host when it has one."""
    global _taken
    if _taken is not None or "--dry" in sys.argv:
        return
    connected = connected_database_host(pyinfra_state.inventory) if pyinfra_state is not None else None
    host = connected or database_host()
    if host is None:
        return
    _taken = host
    try:
        answer = _run_at(host, acquire_script(holder(ref)))
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
    if connected is not None:
        pyinfra_state.add_callback_handler(_GiveBackAfterTheLastOperation())
    atexit.register(give_back)  # a run that stops before its last operation


def give_back(through_pyinfra: bool = False) -> None:
    """Remove this run's lock (once). Through pyinfra's connection only when called from the run
    itself: at exit, whatever stopped the run, OpenSSH (pyinfra's connection may be gone or stuck)."""
    global _taken
    where, _taken = _taken, None
    if where is None:
        return
    try:
        if not isinstance(where, Target) and not (through_pyinfra and where.connected):
            where = database_host()
        if where is not None:
            _run_at(where, release_script())
    except Exception:
        pass  # whatever failed, the lock expires; `provision.py unlock` removes it sooner


def unlock() -> int:
    """python provision.py unlock: remove the lock whoever holds it (a run that died)."""
    host = database_host()
    if host is None:
        raise UserError("no deployed database host is recorded: there is no deploy lock")
    answer = _run(host, unlock_script())
    print(f"deploy lock {answer}" if answer != "none" else "no deploy lock is held")
    return 0
