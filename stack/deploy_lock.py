"""The deploy lock: one deploy (or rollback) at a time on a platform, whoever runs it from wherever.

The lock is a session held for the whole run (stack/deploy_lock_scripts.py says what it holds:
PostgreSQL's advisory lock, and the database host's flock before PostgreSQL exists and across its
restarts): it cannot be taken twice, needs no expiry, and ends with the run's connection.

deploy.py and rollback.py take it before any host changes (never with --dry) and give it back when
the run's last operation has ended, or when the process exits, whatever stopped it. When the run
has a connection to the database host the session is a channel of that connection (no second SSH
handshake on a deploy's critical path: ~0.25 s, issue 12); else (a `--limit` without the database
host) an OpenSSH process whose stdin this process holds. A run killed outright (SIGKILL) closes
its connection with it, and the lock goes with it. `python provision.py unlock` ends a holder's
session at once, e.g. one whose network went away (sshd would end it only at its TCP keepalive).
"""

import atexit
import getpass
import os
import select
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

from pyinfra.api import StringCommand
from pyinfra.api.state import BaseStateCallback

from stack import deploy_lock_scripts
from stack.database import database_record
from stack.deploy_lock_scripts import LockPlace, hold_script, managed_place, unlock_script
from stack.errors import UserError, exit_with
from stack.operate import session
from stack.operate.commands import as_root, ssh_argv
from stack.operate.hosts import Target, target
from stack.state import load_state

RUN = uuid.uuid4().hex[:12]  # this deploy, as its lock's description names it
ANSWER_S = 60  # for the lock's first answer; then the session is held as long as the run
GIVE_BACK_S = 10

_held: "Session | None" = None


class _Pending:
    """Stands for the session while it is being opened."""

    def end(self, wait: bool) -> None:
        pass


_PENDING: Any = _Pending()


def holder(ref: str, now: float | None = None) -> str:
    """What the lock says about its holder: who, from where, when, and what it deploys."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    return f"{getpass.getuser()}@{socket.gethostname()} (pid {os.getpid()}, run {RUN}) deploying {ref} since {when}"


def printable(text: str) -> str:
    """What another host says, as one line of text (no terminal escapes from it)."""
    return "".join(c if c.isprintable() else "?" for c in text.strip())


class Session:
    """The lock's session on the host where it lives: closing its input gives the lock back."""

    def __init__(self, name: str):
        self.name = name

    def answer(self) -> str:
        raise NotImplementedError

    def end(self, wait: bool) -> None:
        raise NotImplementedError


class ProcessSession(Session):
    """A local process: OpenSSH to the lock's host (or a shell, for the fast tests)."""

    def __init__(self, name: str, argv: list[str], host: Target | None = None):
        super().__init__(name)
        self.host, self.log = host, None
        if host is not None:
            fd, self.log = tempfile.mkstemp(prefix="provision-ssh-", suffix=".log")
            os.close(fd)
            argv = [*argv[:1], "-E", self.log, *argv[1:]]
        # stdin is ours alone (close_fds): when this process dies, the session ends.
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def answer(self) -> str:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], ANSWER_S)
        if not ready:
            raise TimeoutError
        line = self.process.stdout.readline()
        if not line and self.host is not None and self.log is not None:
            problem = session.failure(self.host, self.process.wait(), self.log)
            if problem:
                raise UserError(f"cannot take the deploy lock: {problem}")
        return line

    def end(self, wait: bool) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            if wait:
                self.process.wait(timeout=GIVE_BACK_S)
        except (OSError, subprocess.TimeoutExpired):
            pass  # the session ends with this process anyway
        if self.log is not None:
            Path(self.log).unlink(missing_ok=True)


class ChannelSession(Session):
    """A channel of pyinfra's own SSH connection to the lock's host (sudo as pyinfra's is)."""

    def __init__(self, host: Any, script: str):
        super().__init__(host.name)
        from pyinfra.connectors.util import make_unix_command_for_host

        command = make_unix_command_for_host(
            host.state, host, StringCommand(script), _sudo=bool(host.data.get("_sudo"))
        )
        self.channel = host.connector.client.get_transport().open_session()
        self.channel.settimeout(ANSWER_S)
        self.channel.set_combine_stderr(True)
        self.channel.exec_command(command.get_raw_value())
        self.output = self.channel.makefile("r")

    def answer(self) -> str:
        try:
            line = self.output.readline()
        except TimeoutError:  # socket.timeout
            raise TimeoutError from None
        return line.decode(errors="replace") if isinstance(line, bytes) else line

    def end(self, wait: bool) -> None:
        try:
            self.channel.shutdown_write()  # EOF: the session gives the lock back and ends
            if wait:
                self.channel.settimeout(GIVE_BACK_S)
                self.channel.recv_exit_status()
            self.channel.close()
        except Exception:
            pass  # a closed connection has ended the session already


def lock_place() -> LockPlace:
    """Where the lock lives: the db host; with a managed database (db_service rds, its record in
    the state), the setup backend (deploy_lock_scripts.managed_place)."""
    from stack.settings import load_settings
    from tasks.backend.layout import LAYOUT
    from tasks.rds.render import ca_bundle
    from tasks.shared import HISTORY_ROLE

    if load_settings().db_service != "rds":
        return deploy_lock_scripts.PLACE
    database = database_record(load_state())
    if database is None:
        return deploy_lock_scripts.PLACE
    return managed_place(database["address"], int(database["port"]), HISTORY_ROLE, ca_bundle(LAYOUT))


def session_password(place: LockPlace) -> str | None:
    """The password the session reads first (the deploy-only role's), for a place that wants one."""
    if not place.password_on_stdin:
        return None
    from stack.secrets import load_secrets

    return load_secrets()["db_history_password"]


def database_host(place: LockPlace | None = None) -> Target | None:
    """The lock's host as ssh reaches it (the db host, or the setup backend: the first by name), or
    None when there is none to lock on yet (nothing recorded, or never deployed: its host key is
    pinned by the first deploy)."""
    place = place or lock_place()
    state = load_state()
    names = sorted(name for name, host in state.hosts.items() if host.role == place.role) if state else []
    if not state or not names:
        return None
    try:
        return target(names[0], state.hosts[names[0]], state.provider)
    except UserError:
        return None


def connected_database_host(inventory, place: LockPlace | None = None) -> Any:
    """The lock's host in this pyinfra run when pyinfra holds an SSH connection to it, else None."""
    place = place or lock_place()
    hosts = sorted(inventory.get_group(place.group, []), key=lambda host: host.name)
    return hosts[0] if hosts and hosts[0].connected and hasattr(hosts[0].connector, "client") else None


def open_session(where: Any, script: str, password: str | None = None) -> Session:
    """The session, its first input line `password` when given (read by the script, never an argument)."""
    if isinstance(where, Target):
        argv = ssh_argv(where, [as_root(where, f"sh -c {shlex.quote(script)}")])
        session_ = ProcessSession(where.name, argv, host=where)
        if password is not None and session_.process.stdin is not None:
            session_.process.stdin.write(password + "\n")
            session_.process.stdin.flush()
        return session_
    channel = ChannelSession(where, script)
    if password is not None:
        channel.channel.sendall((password + "\n").encode())
    return channel


class _GiveBackAfterTheLastOperation(BaseStateCallback):
    """Gives the lock back once the run's last operation has ended (inside the run: waits for it)."""

    last: ClassVar[list[str]] = []  # the last operation's hash, once known

    @staticmethod
    def operation_end(state, op_hash):
        last = _GiveBackAfterTheLastOperation.last
        if not last:
            last.append(state.get_op_order()[-1])
        if op_hash == last[0]:
            give_back(wait=True)


def take(ref: str, pyinfra_state: Any = None) -> None:
    """Take the lock for this run (once, whatever the number of hosts), or stop in one line.
    With the run's pyinfra state, through its connection to the database host when it has one."""
    global _held
    if _held is not None or "--dry" in sys.argv:
        return
    place = lock_place()
    connected = connected_database_host(pyinfra_state.inventory, place) if pyinfra_state is not None else None
    where = connected or database_host(place)
    if where is None:
        return  # nothing deployed yet to lock on (see database_host)
    # pyinfra prepares hosts in greenlets: the others must not ask while this one waits for its answer.
    _held = _PENDING
    try:
        held = open_session(where, hold_script(holder(ref), place), session_password(place))
        answer = printable(held.answer())
    except TimeoutError:
        _held = None
        exit_with(
            UserError(
                f"the database host {where.name} did not answer for the deploy lock within {ANSWER_S} s: "
                "is it running? (python provision.py status)"
            )
        )
    except UserError as error:
        _held = None
        exit_with(error)
    except Exception as error:  # paramiko's, the channel's: one line, no traceback
        _held = None
        exit_with(UserError(f"cannot take the deploy lock on {where.name}: {error}"))
    if answer != "acquired":
        _held = None
        held.end(wait=False)
        if answer.startswith("held "):
            exit_with(
                UserError(
                    f"another deploy holds the lock on {where.name}: {answer[5:]}; wait for it to end, "
                    f"or if that run is dead: python provision.py unlock"
                )
            )
        exit_with(UserError(f"cannot take the deploy lock on {where.name}: {answer or 'the session ended'}"))
    _held = held
    if pyinfra_state is not None:
        pyinfra_state.add_callback_handler(_GiveBackAfterTheLastOperation())
    atexit.register(give_back_at_exit)  # a run that stops before its last operation


def give_back(wait: bool = False) -> None:
    """End this run's session (once). `wait`: until the session has ended (the run's own give-back)."""
    global _held
    held, _held = _held, None
    if held is not None:
        held.end(wait=wait)


def give_back_at_exit() -> None:
    """At exit, whatever stopped the run: nothing here may yield to gevent's hub, which would run
    the other hosts' pending greenlets (a rollback refused on each backend printed the next
    refusal as a traceback from this callback). The session's input closes with this process
    anyway; a pipe of ours is closed now (a close waits for nothing), a channel of pyinfra's goes
    with its connection."""
    global _held
    held, _held = _held, None
    if isinstance(held, ProcessSession) and held.process.stdin is not None:
        try:
            held.process.stdin.close()
        except Exception:
            pass


def unlock() -> int:
    """python provision.py unlock: end the session holding the lock, whoever's (a run that died,
    or whose connection hangs), and say whose it was."""
    place = lock_place()
    host = database_host(place)
    if host is None:
        raise UserError("no deployed database host is recorded: there is no deploy lock")
    password = session_password(place)
    with session.ssh_log() as log:
        completed = subprocess.run(
            ssh_argv(host, [as_root(host, f"sh -c {shlex.quote(unlock_script(place))}")], log_file=log),
            **({"input": password + "\n"} if password is not None else {"stdin": subprocess.DEVNULL}),
            capture_output=True,
            text=True,
            timeout=60,
        )
        problem = session.failure(host, completed.returncode, log)
    if problem or completed.returncode != 0:
        message = problem or (completed.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"cannot read the deploy lock on {host.name}: {message}")
    answer = printable(completed.stdout)
    if answer.startswith("released "):
        print(f"deploy lock released: {answer[9:]} (its session on {host.name} was ended)")
    else:
        print("no deploy lock is held")
    return 0
