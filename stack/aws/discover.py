"""Read what exists in the account (read-only calls only) and turn it into the state file's shape."""

from botocore.exceptions import ClientError

from stack.aws.alerts import find_alarms, find_topic, topic_arn
from stack.aws.balancing import LoadBalancing
from stack.aws.clients import QUICK, Clients
from stack.aws.credentials import credentials_configured
from stack.aws.errors import aws_errors
from stack.aws.groups import actual_rules, find_groups
from stack.aws.instances import find_instances
from stack.aws.keys import key_pair_exists, private_key_path
from stack.aws.lb_plan import lb_record
from stack.aws.load_balancer import find as find_balancing
from stack.aws.network import default_vpc
from stack.aws.plan import Actual, Instance, key_pair_name, topic_name
from stack.aws.rds import find_rds
from stack.aws.rds_plan import database_entry
from stack.errors import UserError
from stack.settings import Settings
from stack.state import ROLES, Host, State

SSH_PORT = 22  # sshd on every EC2 host (the tests point it at a loopback server)
DENIED = ("AccessDenied", "AccessDeniedException", "AuthorizationError", "UnauthorizedOperation")


def discover(aws, settings: Settings, alerts: bool = True, balancing: bool = True, rds: bool = False) -> Actual:
    """`alerts=False` skips SNS and CloudWatch, `balancing=False` the gateway's load balancer
    (nothing wanted there, and nothing recorded); `rds=True` also looks for the RDS instance and its
    subnet group (db_service rds, destroy)."""
    prefix = settings.project_prefix
    actual = Actual(vpc_id=default_vpc(aws.ec2))
    actual.groups, actual.rules = actual_rules(aws.ec2, find_groups(aws.ec2, prefix, actual.vpc_id))
    actual.instances, actual.duplicates = find_instances(aws.ec2, prefix)
    actual.key_pair_exists = key_pair_exists(aws.ec2, key_pair_name(settings))
    if balancing:
        actual.lb = _balancing(aws, settings)
    if rds:
        actual.rds = find_rds(aws.rds, settings)
    if not alerts:
        return actual
    try:
        account, partition = aws.identity()
        arn = topic_arn(partition, aws.region, account, topic_name(settings))
        subscriptions = find_topic(aws.sns, arn)
        if subscriptions is not None:
            actual.topic_arn, actual.subscriptions = arn, subscriptions
        actual.alarms = find_alarms(aws.cloudwatch, prefix)
    except ClientError as error:
        # An account without SNS/CloudWatch rights can still run hosts when no alerts are wanted.
        if settings.manager_email or error.response["Error"]["Code"] not in DENIED:
            raise
    return actual


def _balancing(aws, settings: Settings) -> LoadBalancing:
    """The gateway's load balancing; an account without elbv2 rights can still run one Kong host."""
    try:
        return find_balancing(aws.elbv2, settings)
    except ClientError as error:
        if settings.gateway.uses_load_balancer or error.response["Error"]["Code"] not in DENIED:
            raise
        return LoadBalancing()


def aws_host(settings: Settings, instance: Instance, role: str, key: str | None) -> Host:
    """One instance as the state file (and so inventory.py) records it."""
    ssh_key = private_key_path(settings)
    # EC2 gives every instance its private address at launch: only a terminated one has none.
    return Host(
        role=role,
        key=key,
        private_ip=instance.private_ip or "",
        public_ip=instance.public_ip,
        ssh_user=settings.ssh_user,
        ssh_key=str(ssh_key) if ssh_key else None,
        ssh_port=SSH_PORT,
        extra={
            "instance_id": instance.id,
            "instance_type": instance.instance_type,
            "zone": instance.zone,
            "state": instance.state,
        },
    )


def state_from_tags(settings: Settings) -> State | None:
    """A state rebuilt from EC2 tags alone, for `provision.py outputs` when state.json is missing.

    None when there are no AWS credentials here or no tagged hosts; an AWS failure is a UserError.
    """
    if not credentials_configured():
        return None
    aws = Clients(settings.region, QUICK)
    try:
        with aws_errors():
            return _state_from_tags(aws, settings)
    except UserError as error:
        raise UserError(
            f"no hosts recorded yet and none found by EC2 tags ({error}): run python provision.py first"
        ) from None


def _state_from_tags(aws, settings: Settings) -> State | None:
    state = State("aws", settings.project_prefix, aws.region)
    instances, _duplicates = find_instances(aws.ec2, settings.project_prefix)
    for name, instance in sorted(instances.items()):
        if instance.role in ROLES:
            state.hosts[name] = aws_host(settings, instance, instance.role, instance.key)
    state.aws = {"region": aws.region, "key_name": key_pair_name(settings), "rebuilt_from_tags": True}
    if not state.hosts:
        return None
    record = lb_record(_balancing(aws, settings), settings)
    if record:
        state.aws["load_balancer"] = record
    if settings.db_service == "rds":  # the deploy needs the database's endpoint too
        state.database = database_entry(find_rds(aws.rds, settings).instance, aws.region)
    return state
