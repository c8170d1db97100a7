"""Create, show and destroy the platform's hosts, like terraform plan/apply/destroy/output.

  python provision.py [apply]         plan, apply what is safe, ask before destroying, print outputs
  python provision.py plan            the same as apply --dry: print the plan, change nothing
  python provision.py destroy [--only NAME ...] [--backup PATH] [--skip-final-snapshot]
  python provision.py outputs         print the hosts and URLs again from the state
  python provision.py backup [PATH]   pull a fresh pg_dump of the database (default .deploy/backups/)
  python provision.py unlock          end the session holding the deploy lock (a run that hangs)
  python provision.py status [--json] every host, backend, the database and Kong on one screen
  python provision.py ssh NAME [-- COMMAND], logs [NAME|ROLE ...] [-f] [--since 10m] [--lines N],
                      manage COMMAND ..., psql [ARGS ...]   (see stack/operate/cli.py)
Add --provider local to run the hosts on this Linux machine instead of AWS.
"""

import argparse
import sys

from stack.errors import UserError, exit_with
from stack.options import Options
from stack.providers import PROVIDERS, chosen_provider_name, provider_named
from stack.settings import load_settings

COMMANDS = ("apply", "plan", "destroy", "outputs", "backup", "unlock", "status", "ssh", "logs", "manage", "psql")
# Their own arguments (a host, a remote command, psql's options) follow them untouched.
OPERATE_COMMANDS = ("status", "ssh", "logs", "manage", "psql")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="provision.py", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", default="apply", choices=COMMANDS)
    parser.add_argument("path", nargs="?", help="backup: the new file (default .deploy/backups/<db>-<UTC time>.dump)")
    parser.add_argument(
        "--provider",
        choices=tuple(PROVIDERS),
        help="where the hosts run (default: the provider in the state, else aws)",
    )
    parser.add_argument("--dry", action="store_true", help="print the plan; make no change")
    parser.add_argument("--yes", "-y", action="store_true", help="approve destructive changes without asking")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for SSH on new hosts")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", default=[], help="destroy: only these hosts (e.g. des-backend-c)"
    )
    parser.add_argument("--backup", metavar="PATH", help="destroy: pg_dump the database to PATH first")
    parser.add_argument(
        "--skip-final-snapshot",
        action="store_true",
        help="destroy, db_service rds: delete the RDS instance without its final snapshot (the data is lost)",
    )
    args = parser.parse_args(argv)
    if (args.only or args.backup) and args.command != "destroy":
        # Terraform users reach for -target: say so rather than silently planning every host.
        parser.error("--only and --backup go with destroy; apply and plan always cover every host in config.yml")
    if args.skip_final_snapshot and args.command != "destroy":
        parser.error("--skip-final-snapshot goes with destroy")
    if args.path and args.command != "backup":
        parser.error(f"unexpected argument {args.path!r}: only backup takes a PATH")
    return args


def split_operate(argv: list[str]) -> tuple[list[str], list[str]]:
    """(provision.py's own options, [operate command, its arguments]) or (argv, []) for the others."""
    for index, word in enumerate(argv):
        if argv[index - 1 : index] in (["--provider"], ["--backup"]):
            continue  # an option's value, even one spelled like a command
        if word in OPERATE_COMMANDS:
            return argv[:index], argv[index:]
        if not word.startswith("-"):
            break
    return argv, []


def main(argv: list[str] | None = None) -> int:
    own, operate = split_operate(sys.argv[1:] if argv is None else argv)
    args = parse_args(own + operate[:1])
    try:
        settings = load_settings()
        if operate:
            from stack.operate.cli import main as operate_main

            chosen_provider_name(args.provider)  # a --provider that contradicts the state is refused
            return operate_main(operate[0], operate[1:], settings)
        if args.command == "unlock":
            from stack.deploy_lock import unlock

            return unlock()
        provider = provider_named(chosen_provider_name(args.provider))
        options = Options(
            dry=args.dry,
            yes=args.yes,
            wait=not args.no_wait,
            only=tuple(args.only),
            backup=args.backup,
            skip_final_snapshot=args.skip_final_snapshot,
        )
        if args.command == "outputs":
            return provider.outputs(settings)
        if args.command == "backup":
            return provider.backup(settings, args.path)
        if args.command == "plan":
            return provider.plan(settings, options)
        if args.command == "destroy":
            return provider.destroy(settings, options)
        return provider.apply(settings, options)
    except UserError as error:
        exit_with(error)
    except KeyboardInterrupt:
        if operate:
            return 130  # Ctrl-C is how an operator ends a session or a status: nothing to report
        print("\ninterrupted: what was already created is recorded in the state; re-run to finish", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
