"""provision.py --provider aws: the provider contract over the modules that do the work (apply,
destroy, backup), imported on first use: boto3 costs about a second that `outputs` never pays."""

from stack.aws.credentials import credentials_configured
from stack.errors import UserError
from stack.options import Options
from stack.provider import Provider
from stack.settings import Settings
from stack.state import State, load_state


class AwsProvider(Provider):
    name = "aws"
    no_balancer = "no load balancer (gateway.nodes is 1 and gateway.load_balancer is off)"

    def apply(self, settings: Settings, options: Options) -> int:
        from stack.aws.apply import apply
        from stack.aws.errors import aws_errors

        with aws_errors():
            return apply(settings, options)

    def destroy(self, settings: Settings, options: Options) -> int:
        from stack.aws.destroy import destroy
        from stack.aws.errors import aws_errors

        with aws_errors():
            return destroy(settings, options)

    def backup(self, settings: Settings, path: str | None) -> int:
        from stack.aws.backup import backup

        return backup(settings, path)

    def recover_state(self, settings: Settings) -> State | None:
        """The hosts found by their EC2 tags (recorded by outputs, so inventory.py can read them)."""
        if not credentials_configured():
            return None
        from stack.aws.console import follow_addresses
        from stack.aws.discover import state_from_tags

        state = state_from_tags(settings)
        if state:
            follow_addresses(state)  # the pinned keys follow each host's current address
        return state

    def gateway_balanced(self, settings: Settings) -> bool:
        return settings.gateway.uses_load_balancer

    def gateway_out(self, settings: Settings, name: str) -> None:
        from stack.aws.errors import aws_errors
        from stack.aws.load_balancer import take_out
        from stack.aws.run import progress

        if not self.gateway_balanced(settings):
            return super().gateway_out(settings, name)
        with aws_errors():
            aws, group, instance_id = _gateway_target(settings, name)
            take_out(aws.elbv2, group, instance_id, name, settings.gateway.deregistration_delay, progress)

    def gateway_in(self, settings: Settings, name: str) -> None:
        from stack.aws.errors import aws_errors
        from stack.aws.load_balancer import put_in
        from stack.aws.run import progress

        if not self.gateway_balanced(settings):
            return super().gateway_in(settings, name)
        with aws_errors():
            aws, group, instance_id = _gateway_target(settings, name)
            put_in(aws.elbv2, group, instance_id, name, progress)


def _gateway_target(settings: Settings, name: str):
    """(clients, the target group's ARN, the node's instance id), from the state."""
    from stack.aws.clients import Clients

    state = load_state()
    host = state.hosts.get(name) if state else None
    if state is None or host is None or host.role != "kong":
        raise UserError(f"{name} is not a recorded Kong node: run python provision.py first")
    balancer = (state.aws or {}).get("load_balancer")
    if not balancer or not balancer.get("target_group_arn"):
        raise UserError("no load balancer recorded in the state: run python provision.py (apply) first")
    return Clients(state.region or settings.region), balancer["target_group_arn"], host.extra["instance_id"]
