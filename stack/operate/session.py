"""Running ssh, and saying in one line why it failed.

ssh writes its own messages (cannot connect, host key refused, key refused) to a log file (-E),
so the remote command's stderr stays the remote command's, and a failure (exit 255 with a
message in that log) becomes one `error:` line naming the host and what to do.
"""

import os
import signal
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from stack.errors import UserError
from stack.host_keys import keys_for, mismatch, offered_in
from stack.operate.hosts import Target

SSH_FAILED = 255


@contextmanager
def ssh_log():
    """A private file for ssh's own messages, removed afterwards."""
    fd, path = tempfile.mkstemp(prefix="provision-ssh-", suffix=".log")
    os.close(fd)
    try:
        yield path
    finally:
        Path(path).unlink(missing_ok=True)


def explain(host: Target, log_text: str) -> str:
    """ssh's messages about `host` as one sentence with a way out (pure: tested by exact text)."""
    lines = [line.strip() for line in log_text.splitlines() if line.strip() and not line.startswith("@")]
    text = " ".join(lines)
    where = f"{host.name} ({host.user}@{host.address}:{host.port})"
    offered = offered_in(log_text)
    if offered:
        path = Path(host.known_hosts)
        pinned = keys_for(path.read_text() if path.exists() else "", host.known_hosts_name)
        return mismatch(where, offered, pinned, host.known_hosts)
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in log_text or "Host key verification failed" in text:
        return (
            f"{where}: its host key does not match the one pinned in {host.known_hosts}; if the host "
            f"was re-created on purpose, delete its line there (ssh-keygen -R {host.known_hosts_name} "
            f"-f {host.known_hosts}), otherwise do not connect"
        )
    if "Permission denied" in text:
        return f"{where}: the host refused the key {host.key} (is it the key this host was created with?)"
    if "connect to host" in text or "Connection timed out" in text or "Connection refused" in text:
        reason = next(line for line in reversed(lines) if "connect" in line.lower()).rsplit(": ", 1)[-1]
        return f"{where} does not answer ({reason}): is it running? (python provision.py starts stopped hosts)"
    return f"{where}: ssh failed: {lines[-1] if lines else 'no message'}"


def failure(host: Target, returncode: int, log_path: str) -> str | None:
    """The one-line reason when ssh itself failed, None when the remote command's status is this."""
    if returncode != SSH_FAILED:
        return None
    text = Path(log_path).read_text(errors="replace")
    return explain(host, text) if text.strip() else None


def interactive(host: Target, argv_for_log) -> int:
    """Run ssh in this terminal; its exit status is ours. Ctrl-C is ssh's (in a terminal session the
    remote program gets it); this process only waits, so no KeyboardInterrupt traceback is possible."""
    with ssh_log() as log:
        argv = argv_for_log(log)
        previous = signal.signal(signal.SIGINT, lambda *_: None)  # a handler, not SIG_IGN: ssh gets the default
        try:
            returncode = subprocess.call(argv)
        except OSError as error:
            raise UserError(f"cannot run ssh ({error.strerror}): install openssh-client") from None
        finally:
            signal.signal(signal.SIGINT, previous)
        problem = failure(host, returncode, log)
    if problem:
        raise UserError(problem)
    return 128 - returncode if returncode < 0 else returncode
