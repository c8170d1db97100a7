"""provision.py --provider aws apply (and plan): discover (read) -> plan (pure) -> print -> the
"+"/"~" actions -> wait -> confirm -> the "-" actions -> state -> outputs."""

from stack.aws import keys
from stack.aws.ami import resolve_image
from stack.aws.clients import Clients
from stack.aws.console import follow_addresses
from stack.aws.discover import aws_host, discover
from stack.aws.lb_plan import lb_first, lb_record, plan_load_balancing
from stack.aws.network import db_subnets, subnets_for
from stack.aws.plan import Action, Actual, aws_host_names, instance_type_of, key_pair_name, plan_apply, render
from stack.aws.rds import master_password
from stack.aws.rds_plan import changes, database_entry, instance_name, plan_rds, rds_group
from stack.aws.rules import ssh_warning
from stack.aws.run import Run, connect, described, progress, warn
from stack.confirm import confirm
from stack.errors import UserError
from stack.options import Options
from stack.outputs import render_outputs
from stack.provider import check_recorded_project
from stack.settings import Settings
from stack.state import State, load_state, save_state


def _alerts_may_exist(settings: Settings, recorded: State | None) -> bool:
    """Look at SNS and CloudWatch only when alerts are wanted, recorded, or the state is gone."""
    if settings.manager_email or recorded is None or recorded.provider != "aws":
        return True
    section = recorded.aws or {}
    return bool(section.get("topic_arn") or section.get("rebuilt_from_tags"))


def _balancing_may_exist(settings: Settings, recorded: State | None) -> bool:
    """Look at elbv2 only when a load balancer is wanted, recorded, or the state is gone."""
    if settings.gateway.uses_load_balancer or recorded is None or recorded.provider != "aws":
        return True
    section = recorded.aws or {}
    return bool(section.get("load_balancer") or section.get("rebuilt_from_tags"))


def _plan(settings: Settings, actual: Actual, region: str, image: str = "") -> list[Action]:
    """The hosts' plan with the gateway's load balancing after the instances it registers."""
    actions = plan_apply(settings, actual, region, image)
    balancing = plan_load_balancing(settings, actual.lb, actual.instances)
    split = next((i for i, a in enumerate(actions) if a.kind in ("sns_topic", "sns_subscription", "alarm")), None)
    split = len(actions) if split is None else split
    return actions[:split] + balancing + actions[split:]


def _rds_may_exist(settings: Settings, recorded: State | None) -> bool:
    """Look at RDS when it is wanted, or recorded (db_service was rds until now): a host stack's
    apply makes exactly the calls it made before RDS existed here."""
    if settings.db_service == "rds":
        return True
    return bool(recorded and (recorded.database or (recorded.aws or {}).get("rds_left")))


def _plan_rds(settings: Settings, aws, actual: Actual, recorded: State | None) -> list[Action]:
    """The RDS actions of db_service rds; with host, only a warning for an instance left from rds."""
    rds = actual.rds
    if rds is None:
        return []
    found = rds.instance
    if settings.db_service != "rds":
        if found:
            warn(
                f"the RDS instance {found.identifier} exists but db_service is host: apply never deletes a "
                f"database; move its data to the db host (docs/rds.md), then delete it in the RDS console, "
                f"or set db_service: rds again"
            )
        return []
    if found and found.status in ("deleting", "stopping"):
        raise UserError(
            f"RDS instance {found.identifier} is {found.status}: wait until it is "
            f"{'gone' if found.status == 'deleting' else 'stopped'} and re-run provision.py"
        )
    if found:
        for line in changes(settings, found, actual.groups.get(rds_group(settings)))[2]:
            warn(line)
    subnets = db_subnets(aws.ec2, actual.vpc_id) if rds.subnet_group is None else []
    return plan_rds(settings, rds, actual.groups.get(rds_group(settings)), subnets)


def apply(settings: Settings, options: Options) -> int:
    recorded = load_state()
    check_recorded_project(recorded, settings)
    aws = connect(settings)
    actual = discover(
        aws,
        settings,
        alerts=_alerts_may_exist(settings, recorded),
        balancing=_balancing_may_exist(settings, recorded),
        rds=_rds_may_exist(settings, recorded),
    )
    for line in [ssh_warning(settings)] + keys.check_key(aws.ec2, settings, actual.key_pair_exists):
        if line:
            warn(line)
    for name, (role, _key) in aws_host_names(settings).items():
        found = actual.instances.get(name)
        if found and found.instance_type != instance_type_of(settings, role):
            warn(
                f"{name} runs {found.instance_type}, the settings say {instance_type_of(settings, role)}: "
                f"hosts are not replaced in place; destroy --only {name} and re-run to replace it"
            )

    database = _plan_rds(settings, aws, actual, recorded)
    actions = _plan(settings, actual, aws.region) + database
    image_id, subnets = "", {}
    launches = [a for a in actions if a.kind == "instance" and a.op == "+"]
    types = {a.data["type"] for a in launches}
    if any(a.kind == "load_balancer" and a.op == "+" for a in actions):
        types.add(instance_type_of(settings, "kong"))  # the load balancer spans the Kong nodes' zones
    if types:
        # Read-only checks that can refuse the plan itself (also under --dry): image and zones.
        subnets = subnets_for(aws.ec2, actual.vpc_id, sorted(types))
    if launches:
        image_id, image_name = resolve_image(aws.ec2, settings.ami_id)
        actions = _plan(settings, actual, aws.region, image=f"{image_id} {image_name}") + database
    progress(render(actions))
    if options.dry:
        progress("--dry: nothing was changed.")
        return 0
    if any(a.kind == "rds_instance" and a.op == "+" for a in actions):
        master_password()  # a password RDS would refuse stops the run before anything is created

    state = _fresh_state(settings, aws, actual)
    save_state(state)
    follow_addresses(state)  # a stop/start gave a host a new public IP: its pinned keys follow it
    run = Run(aws, settings, actual, state, image_id, subnets)
    safe = [a for a in actions if not a.destructive]
    run.do_all([a for a in safe if a.kind != "target"])
    run.wait_until_ready(options.wait)  # the safe part is complete (and recorded) before any question
    run.do_all([a for a in safe if a.kind == "target"])  # AWS registers only running instances
    if settings.db_service == "rds":
        run.wait_for_database(options.wait)
    destructive = lb_first([a for a in actions if a.destructive])
    if destructive:
        if confirm(described(destructive), options.yes):
            run.do_all(destructive)
            run.wait_for_terminations()
        else:
            progress("Destructive changes were not applied.")
    progress("Apply complete.")
    progress("")
    progress(render_outputs(state, settings))
    return 0


def _fresh_state(settings: Settings, aws: Clients, actual: Actual) -> State:
    """The state as AWS has it now: the desired hosts that exist, the groups, the key."""
    state = State("aws", settings.project_prefix, aws.region)
    for name, (role, key) in aws_host_names(settings).items():
        if name in actual.instances:
            state.hosts[name] = aws_host(settings, actual.instances[name], role, key)
    state.aws = {
        "region": aws.region,
        "vpc_id": actual.vpc_id,
        "groups": dict(actual.groups),
        "key_name": key_pair_name(settings),
        "topic_arn": actual.topic_arn,
    }
    record = lb_record(actual.lb, settings)
    if record:
        state.aws["load_balancer"] = record
    found = actual.rds.instance if actual.rds else None
    if settings.db_service == "rds":
        state.database = database_entry(found, aws.region)
    elif found:
        state.aws["rds_left"] = instance_name(settings)  # so the next applies keep warning about it
    return state
