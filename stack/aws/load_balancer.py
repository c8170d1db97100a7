"""The gateway's Network Load Balancer (elbv2): find it by name and tags, create its parts, move
Kong nodes in and out of its target group, take it apart in order. Names and values: lb_plan.py."""

import time

from botocore.exceptions import ClientError

from stack.errors import UserError

POLL_SECONDS = 5
# A node put back is healthy after healthy_threshold checks of interval seconds (2 x 10 s), plus
# the time AWS takes to start checking a new target (about a minute on a real NLB).
HEALTHY_TIMEOUT = 300


def target_states(elbv2, target_group_arn: str, instance_ids: list[str] | None = None) -> dict[str, str]:
    """instance id -> its state in the target group (initial, healthy, unhealthy, draining, unused...)."""
    asked = {"Targets": [{"Id": instance_id} for instance_id in instance_ids]} if instance_ids else {}
    answer = elbv2.describe_target_health(TargetGroupArn=target_group_arn, **asked)
    return {
        entry["Target"]["Id"]: entry["TargetHealth"]["State"]
        for entry in answer["TargetHealthDescriptions"]
        if entry["TargetHealth"]["State"] != "unused" or entry["TargetHealth"].get("Reason") != "Target.NotRegistered"
    }


def wait_drained(elbv2, target_group_arn: str, names: dict[str, str], progress, timeout: float) -> None:
    """Wait until none of the instances (id -> host name) is registered or draining any more."""
    deadline = time.monotonic() + timeout
    while True:
        states = target_states(elbv2, target_group_arn, list(names))
        waiting = sorted(f"{names[i]} ({state})" for i, state in states.items() if i in names)
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise UserError(
                f"timed out waiting for the load balancer to drain {', '.join(waiting)}; re-run to continue"
            )
        progress(f"  draining from the load balancer: {', '.join(waiting)}")
        time.sleep(POLL_SECONDS)


def wait_healthy(
    elbv2, target_group_arn: str, names: dict[str, str], progress, timeout: float = HEALTHY_TIMEOUT
) -> None:
    """Wait until every instance (id -> host name) passes the load balancer's health check."""
    deadline = time.monotonic() + timeout
    while True:
        states = target_states(elbv2, target_group_arn, list(names))
        waiting = sorted(f"{names[i]} ({states.get(i, 'not registered')})" for i in names if states.get(i) != "healthy")
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise UserError(
                f"{', '.join(waiting)} did not turn healthy in the load balancer within {int(timeout)} s: "
                "check Kong on that host (python provision.py status), then re-run"
            )
        progress(f"  waiting for the load balancer's health check: {', '.join(waiting)}")
        time.sleep(POLL_SECONDS)


def deregister(elbv2, target_group_arn: str, instance_ids: list[str]) -> None:
    try:
        elbv2.deregister_targets(TargetGroupArn=target_group_arn, Targets=[{"Id": i} for i in instance_ids])
    except ClientError as error:
        if error.response["Error"]["Code"] != "InvalidTarget":  # already gone
            raise


def register(elbv2, target_group_arn: str, instance_ids: list[str]) -> None:
    elbv2.register_targets(TargetGroupArn=target_group_arn, Targets=[{"Id": i} for i in instance_ids])


def take_out(elbv2, target_group_arn: str, instance_id: str, name: str, delay: int, progress) -> None:
    """Deregister one node and wait out its drain (the deregistration delay, plus AWS's own lag)."""
    progress(f"  taking {name} out of the load balancer (up to {delay} s for its requests to finish)")
    deregister(elbv2, target_group_arn, [instance_id])
    wait_drained(elbv2, target_group_arn, {instance_id: name}, progress, timeout=delay + HEALTHY_TIMEOUT)
    progress(f"  {name} is out of the load balancer")


def put_in(elbv2, target_group_arn: str, instance_id: str, name: str, progress) -> None:
    """Register one node and wait until the load balancer finds it healthy."""
    progress(f"  putting {name} back into the load balancer")
    register(elbv2, target_group_arn, [instance_id])
    wait_healthy(elbv2, target_group_arn, {instance_id: name}, progress)
    progress(f"  {name} is healthy in the load balancer")
