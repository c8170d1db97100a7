"""provision.py --provider aws apply (and plan): discover (read) -> plan (pure) -> print -> the
"+"/"~" actions -> wait -> confirm -> the "-" actions -> state -> outputs."""

from stack.aws import keys
from stack.aws.ami import resolve_image
from stack.aws.clients import Clients
from stack.aws.console import follow_addresses
from stack.aws.discover import aws_host, discover
from stack.aws.lb_plan import lb_first, lb_record, plan_load_balancing
from stack.aws.network import subnets_for
from stack.aws.plan import Action, Actual, instance_type_of, key_pair_name, plan_apply, render
from stack.aws.rules import ssh_warning
from stack.aws.run import Run, connect, described, progress, warn
from stack.confirm import confirm
from stack.options import Options
from stack.outputs import render_outputs
from stack.provider import check_recorded_project
from stack.settings import Settings, host_names
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


def apply(settings: Settings, options: Options) -> int:
    recorded = load_state()
    check_recorded_project(recorded, settings)
    aws = connect(settings)
    actual = discover(
        aws,
        settings,
        alerts=_alerts_may_exist(settings, recorded),
        balancing=_balancing_may_exist(settings, recorded),
    )
    for line in [ssh_warning(settings)] + keys.check_key(aws.ec2, settings, actual.key_pair_exists):
        if line:
            warn(line)
    for name, (role, _key) in host_names(settings).items():
        found = actual.instances.get(name)
        if found and found.instance_type != instance_type_of(settings, role):
            warn(
                f"{name} runs {found.instance_type}, the settings say {instance_type_of(settings, role)}: "
                f"hosts are not replaced in place; destroy --only {name} and re-run to replace it"
            )

    actions = _plan(settings, actual, aws.region)
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
        actions = _plan(settings, actual, aws.region, image=f"{image_id} {image_name}")
    progress(render(actions))
    if options.dry:
        progress("--dry: nothing was changed.")
        return 0

    state = _fresh_state(settings, aws, actual)
    save_state(state)
    follow_addresses(state)  # a stop/start gave a host a new public IP: its pinned keys follow it
    run = Run(aws, settings, actual, state, image_id, subnets)
    safe = [a for a in actions if not a.destructive]
    run.do_all([a for a in safe if a.kind != "target"])
    run.wait_until_ready(options.wait)  # the safe part is complete (and recorded) before any question
    run.do_all([a for a in safe if a.kind == "target"])  # AWS registers only running instances
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
    for name, (role, key) in host_names(settings).items():
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
    return state
