"""The operate subcommands of provision.py: ssh, logs, manage, psql and status.

python provision.py ssh NAME [-- COMMAND ...]     a shell, or one command, on a host (NAME or its role)
python provision.py logs [NAME|ROLE ...] [-f] [--since 10m] [--lines N]
python provision.py manage COMMAND ...            manage.py on the setup backend (interactive on a terminal)
python provision.py psql [PSQL ARGS ...]          psql to the app database as the app user, on the db host
python provision.py status [--json]               everything on one screen; exit 1 when anything is unhealthy
"""

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from stack.database import required_database
from stack.errors import UserError
from stack.operate import hosts as recorded
from stack.operate import session
from stack.operate.commands import manage_command, managed_client_command, psql_command, since_seconds, ssh_argv
from stack.operate.logs import show_logs
from stack.operate.probe import parse, probe_script
from stack.operate.status import Answer, render, report
from stack.settings import Settings
from stack.state import Host, State, load_state

PROBE_TIMEOUT_S = 60


def parse_args(command: str, rest: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"provision.py {command}")
    if command in ("manage", "psql"):
        # Everything is the remote program's (manage check --deploy, psql -c '...'), options included.
        if command == "manage" and not rest:
            parser.error("name a management command, e.g. manage check, manage createsuperuser, manage shell")
        return argparse.Namespace(args=list(rest))
    if command == "ssh":
        parser.add_argument("name", help="a host name (des-backend-a) or a role naming one host (db, kong)")
        parser.add_argument("remote", nargs=argparse.REMAINDER, help="-- COMMAND ...: run it instead of a shell")
    elif command == "logs":
        parser.add_argument("names", nargs="*", metavar="NAME|ROLE", help="hosts or roles (default: every host)")
        parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C ends)")
        parser.add_argument("--since", help="only lines newer than this, e.g. 30s, 10m, 2h, 1d")
        parser.add_argument("-n", "--lines", type=int, help="the last N lines of each host (default 100)")
    elif command == "status":
        parser.add_argument("--json", action="store_true", help="the report as JSON, for scripts")
    args = parser.parse_args(rest)
    if command == "ssh" and args.remote[:1] == ["--"]:
        args.remote = args.remote[1:]
    if command == "logs":
        if args.lines is not None and args.lines < 1:
            parser.error("--lines: expected a whole number of at least 1")
        try:
            args.since = since_seconds(args.since)
        except ValueError:
            parser.error(f"--since {args.since}: expected a number and s, m, h or d (e.g. 10m)")
    return args


def _state_and_hosts() -> tuple[State, dict[str, Host]]:
    state = load_state()
    hosts = recorded.recorded_hosts(state)  # without a state, one line saying to provision first
    assert state is not None
    return state, hosts


def _one(word: str) -> recorded.Target:
    state, hosts = _state_and_hosts()
    name = recorded.select_one(hosts, word, state.prefix)
    return recorded.target(name, hosts[name], state.provider)


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def run_ssh(args) -> int:
    host = _one(args.name)
    tty = not args.remote and _interactive()
    return session.interactive(host, lambda log: ssh_argv(host, args.remote, tty=tty, log_file=log))


def run_manage(args, settings: Settings) -> int:
    _state, hosts = _state_and_hosts()
    host = _one(recorded.setup_backend_name(hosts))
    remote = [manage_command(host, args.args)]
    return session.interactive(host, lambda log: ssh_argv(host, remote, tty=_interactive(), log_file=log))


def run_psql(args, settings: Settings) -> int:
    if settings.db_service == "rds":
        # No db host to log in to: psql on the setup backend, over TLS, as the app role.
        state, hosts = _state_and_hosts()
        host = _one(recorded.setup_backend_name(hosts))
        remote = [managed_client_command(host, "psql", settings, required_database(state), args.args)]
        return session.interactive(host, lambda log: ssh_argv(host, remote, tty=_interactive(), log_file=log))
    host = _one("db")
    remote = [psql_command(host, settings, args.args)]
    return session.interactive(host, lambda log: ssh_argv(host, remote, tty=_interactive(), log_file=log))


def run_logs(args) -> int:
    state, hosts = _state_and_hosts()
    names = recorded.select(hosts, args.names, state.prefix)
    targets = [recorded.target(name, hosts[name], state.provider) for name in names]
    try:
        return show_logs(targets, args.lines, args.since, args.follow)
    except KeyboardInterrupt:  # Ctrl-C before the readers started
        return 130


def _probe(name: str, host: Host, provider: str | None, settings: Settings) -> Answer:
    address = host.public_ip or host.private_ip
    try:
        found = recorded.target(name, host, provider)
    except UserError as error:
        return Answer(name, host.role, address, {}, str(error))
    with session.ssh_log() as log:
        try:
            result = subprocess.run(
                ssh_argv(found, [probe_script(found, settings)], log_file=log),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=PROBE_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired:
            return Answer(name, host.role, address, {}, f"no answer within {PROBE_TIMEOUT_S} s")
        except OSError as error:
            raise UserError(f"cannot run ssh ({error.strerror}): install openssh-client") from None
        problem = session.failure(found, result.returncode, log)
    if problem:
        return Answer(name, host.role, address, {}, problem)
    return Answer(name, host.role, address, parse(result.stdout))


def run_status(args, settings: Settings) -> int:
    state, hosts = _state_and_hosts()
    with ThreadPoolExecutor(max_workers=min(len(hosts), 8)) as pool:
        answers = list(pool.map(lambda name: _probe(name, hosts[name], state.provider, settings), hosts))
    data = report(answers)
    print(json.dumps(data, indent=2) if args.json else render(data, settings.gateway.health_path))
    return 0 if data["healthy"] else 1


def main(command: str, rest: list[str], settings: Settings) -> int:
    args = parse_args(command, rest)
    if command == "ssh":
        return run_ssh(args)
    if command == "logs":
        return run_logs(args)
    if command == "manage":
        return run_manage(args, settings)
    if command == "psql":
        return run_psql(args, settings)
    return run_status(args, settings)
