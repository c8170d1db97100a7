"""python provision.py logs: several hosts' logs, each line prefixed with its host (like kamal app logs).

Without --follow each host's lines are printed together, hosts in name order. With --follow lines
are printed as they arrive, interleaved; Ctrl-C (SIGINT) ends every ssh and exits 130 quietly.
A follow runs under a remote terminal (ssh -tt) so that the remote reader gets SIGHUP and ends
when the connection does, instead of lingering on the host until its next log line.
"""

import signal
import subprocess
import sys
import threading
from contextlib import ExitStack

from stack.errors import UserError
from stack.operate.commands import logs_command, ssh_argv
from stack.operate.hosts import Target
from stack.operate.session import failure, ssh_log


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _prefixed(name: str, width: int, line: str) -> str:
    return f"{name:<{width}} | {line.rstrip(chr(13) + chr(10))}\n"


def _start(host: Target, lines: int | None, since: int | None, follow: bool, log: str) -> subprocess.Popen:
    argv = ssh_argv(host, [logs_command(host, lines, since, follow)], force_tty=follow, log_file=log)
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except OSError as problem:
        raise UserError(f"cannot run ssh ({problem.strerror}): install openssh-client") from None


def show_logs(hosts: list[Target], lines: int | None, since: int | None, follow: bool) -> int:
    with ExitStack() as stack:
        logs = {host.name: stack.enter_context(ssh_log()) for host in hosts}
        return _show(hosts, lines, since, follow, logs)


def _show(hosts: list[Target], lines: int | None, since: int | None, follow: bool, logs: dict[str, str]) -> int:
    width = max(len(host.name) for host in hosts)
    by_name = {host.name: host for host in hosts}
    processes = {host.name: _start(host, lines, since, follow, logs[host.name]) for host in hosts}

    def _failed(process: subprocess.Popen, name: str) -> str | None:
        return failure(by_name[name], process.returncode, logs[name])

    if not follow:
        status = 0
        for name, process in processes.items():
            output, _ = process.communicate()
            sys.stdout.writelines(_prefixed(name, width, line) for line in output.splitlines())
            problem = _failed(process, name)
            if problem:
                print(f"error: {problem}", file=sys.stderr)
                status = 1
        return status

    lock = threading.Lock()

    def pump(name: str, process: subprocess.Popen) -> None:
        for line in process.stdout or ():  # always a pipe (see _start)
            with lock:
                sys.stdout.write(_prefixed(name, width, line))
                sys.stdout.flush()

    readers = [threading.Thread(target=pump, args=item, daemon=True) for item in processes.items()]
    for reader in readers:
        reader.start()
    # A SIGTERM (a supervisor, `timeout`) ends the ssh processes too, as Ctrl-C does, not orphaning them.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for process in processes.values():
            process.wait()
        for reader in readers:
            reader.join()
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reaches the ssh processes too; a SIGINT sent to this process alone does not.
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    failures = [problem for name, process in processes.items() if (problem := _failed(process, name))]
    for problem in failures:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if failures else 0
