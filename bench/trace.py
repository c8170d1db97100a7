"""pyinfra's own CLI, run in this process with a recorder: `python bench/trace.py TRACE.json <pyinfra args>`.

What it records (written to TRACE.json at exit), by wrapping pyinfra and paramiko functions in this
process only (nothing changes in the project or on the hosts):
- every command a host runs: host, operation, fact (when a fact asked it), pyinfra's printable
  text of the command (secrets given as MaskString print as ***), seconds; file transfers alike;
- round trips: each reply the client waits for (channel open, exec request, exit status, each SFTP
  request), counted per SSH transport, i.e. per host;
- seconds per operation per host (run_host_op, facts included when they are read at run time).
- phases: when pyinfra's CLI started and ended reading the inventory, connecting, preparing
  (deploy.py for every host) and running the operations, from this process's start.
Why a wrapper rather than `--debug` output: the debug log has no timings per command, mixes hosts
run in parallel, and prints commands unmasked by level; here each record is tied to its host.
"""

import time

STARTED = time.monotonic()  # before pyinfra's imports: they are part of a run's start-up

import atexit  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import paramiko  # noqa: E402
from pyinfra.api import facts, operations  # noqa: E402
from pyinfra.connectors.ssh import SSHConnector  # noqa: E402

RECORD: dict = {"commands": [], "operations": [], "round_trips": {}, "phases": []}
# pyinfra's CLI steps, in the order it takes them (pyinfra_cli/cli.py).
PHASES = ("make_inventory", "connect_all", "load_deploy_file", "run_ops")
_host_of_transport: dict[int, str] = {}
_fact_of_host: dict[str, list[str]] = {}


def _operation(host) -> str:
    op_hash = host.executing_op_hash or host.current_op_hash
    if not op_hash:
        return "(outside operations)"
    try:
        return sorted(host.state.get_op_meta(op_hash).names)[0]
    except (KeyError, IndexError, AttributeError):
        return "(unknown operation)"


def _recorded(kind: str, original):
    def wrapper(self, *args, **kwargs):
        host = self.host
        transport = self.client.get_transport() if self.client else None
        if transport is not None:
            _host_of_transport[id(transport)] = host.name
        started = time.monotonic()
        try:
            return original(self, *args, **kwargs)
        finally:
            text = str(args[0]) if kind == "command" and args else f"{kind} {args[1] if len(args) > 1 else ''}"
            stack = _fact_of_host.get(host.name) or [None]
            RECORD["commands"].append(
                {
                    "host": host.name,
                    "kind": kind,
                    "op": _operation(host),
                    "fact": stack[-1],
                    "text": text[:160],
                    "s": round(time.monotonic() - started, 4),
                }
            )

    return wrapper


def _fact_recorded(original):
    def wrapper(state, host, cls, *args, **kwargs):
        stack = _fact_of_host.setdefault(host.name, [])
        stack.append(getattr(cls, "__name__", str(cls)))
        try:
            return original(state, host, cls, *args, **kwargs)
        finally:
            stack.pop()

    return wrapper


def _op_timed(original):
    def wrapper(state, host, op_hash):
        started = time.monotonic()
        try:
            return original(state, host, op_hash)
        finally:
            names = sorted(state.get_op_meta(op_hash).names) or ["?"]
            RECORD["operations"].append({"host": host.name, "op": names[0], "s": round(time.monotonic() - started, 4)})

    return wrapper


def _counted(original, transport_of):
    def wrapper(self, *args, **kwargs):
        name = _host_of_transport.get(id(transport_of(self)), "(unknown)")
        RECORD["round_trips"][name] = RECORD["round_trips"].get(name, 0) + 1
        return original(self, *args, **kwargs)

    return wrapper


def _phase_timed(name: str, original):
    def wrapper(*args, **kwargs):
        RECORD["phases"].append([f"{name} start", round(time.monotonic() - STARTED, 4)])
        try:
            return original(*args, **kwargs)
        finally:
            RECORD["phases"].append([f"{name} end", round(time.monotonic() - STARTED, 4)])

    return wrapper


def install() -> None:
    from pyinfra_cli import cli

    for name in PHASES:
        setattr(cli, name, _phase_timed(name, getattr(cli, name)))
    SSHConnector.run_shell_command = _recorded("command", SSHConnector.run_shell_command)
    SSHConnector.put_file = _recorded("put", SSHConnector.put_file)
    SSHConnector.get_file = _recorded("get", SSHConnector.get_file)
    facts._get_fact = _fact_recorded(facts._get_fact)
    operations.run_host_op = _op_timed(operations.run_host_op)
    paramiko.Transport.open_channel = _counted(paramiko.Transport.open_channel, lambda t: t)
    paramiko.Channel._wait_for_event = _counted(paramiko.Channel._wait_for_event, lambda c: c.transport)
    paramiko.Channel.recv_exit_status = _counted(paramiko.Channel.recv_exit_status, lambda c: c.transport)
    paramiko.SFTPClient._read_response = _counted(paramiko.SFTPClient._read_response, lambda s: s.sock.get_transport())


def main() -> None:
    path = sys.argv.pop(1)

    def dump():
        RECORD["phases"].append(["exit", round(time.monotonic() - STARTED, 4)])
        with open(path, "w") as handle:
            json.dump(RECORD, handle)

    atexit.register(dump)
    install()
    from pyinfra_cli.main import main as pyinfra_main

    sys.argv[0] = "pyinfra"
    sys.exit(pyinfra_main())


if __name__ == "__main__":
    main()
