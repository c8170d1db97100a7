"""provision.py --provider aws destroy [--only NAME ...] [--backup PATH]: every resource of the
project (or the `only` hosts and their alarms), through the same Run as apply, each kind at once."""

from stack.aws.backup import pull_backup
from stack.aws.discover import discover
from stack.aws.lb_plan import TEARDOWN, plan_node_removals, plan_teardown
from stack.aws.plan import plan_destroy, render
from stack.aws.run import Run, connect, described, progress, warn
from stack.confirm import confirm
from stack.dump import check_backup_path
from stack.errors import UserError
from stack.options import Options
from stack.provider import check_recorded_project
from stack.settings import Settings
from stack.state import State, load_state, remove_state, save_state


def destroy(settings: Settings, options: Options) -> int:
    check_recorded_project(load_state(), settings)
    aws = connect(settings)
    actual = discover(aws, settings)
    prefix = settings.project_prefix
    unknown = sorted(set(options.only) - set(actual.instances))
    if unknown:
        known = ", ".join(sorted(actual.instances)) or "none"
        raise UserError(f"--only {' '.join(unknown)}: no such host of project {prefix} (its hosts: {known})")
    if options.only:
        actions = plan_node_removals(settings, actual.lb, actual.instances, options.only)
    else:
        actions = plan_teardown(actual.lb)
    actions += plan_destroy(settings, actual, options.only)
    database = f"{prefix}-db"
    db_goes = any(a.kind == "instance" and a.name == database for a in actions)
    if options.backup:
        if not db_goes:
            raise UserError(
                f"--backup dumps the database before {database} is terminated, "
                f"but {database} is not being destroyed: drop --backup"
            )
        check_backup_path(options.backup)
    progress(render(actions))
    if db_goes and not options.backup:
        warn(f"{database} holds the database: add --backup PATH to pull a pg_dump to this machine first")
    if options.dry:
        progress("--dry: nothing was changed.")
        return 0
    if not actions:
        if not options.only:
            remove_state()
        progress("Nothing to destroy.")
        return 0
    if not confirm(described(actions), options.yes):
        progress("Destroy cancelled.")
        return 1
    if options.backup:
        pull_backup(settings, actual.instances[database], options.backup, progress)

    state = load_state() or State("aws", prefix, aws.region)
    run = Run(aws, settings, actual, state, together=True)
    # The load balancer first (a node drains before it goes); the groups can go only once no
    # instance uses them: every termination is waited for first.
    run.do_all([a for a in actions if a.kind in TEARDOWN])
    run.do_all([a for a in actions if a.kind == "instance"])
    run.wait_for_terminations()
    run.do_all([a for a in actions if a.kind not in ("instance", *TEARDOWN)])
    if options.only:
        save_state(state)
    else:
        remove_state()
    progress("Destroy complete.")
    return 0
