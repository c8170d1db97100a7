"""The load balancer in front of the Kong nodes, as the deploy drives it: the provider's
gateway_out / gateway_in (stack/provider.py; the AWS NLB, or the local provider's "there is none").

Each function here runs on the deploy's machine as a step of a Kong node's operation
(pyinfra FunctionCommand), between the commands that node runs: False fails that node with one
line, never a traceback. Their progress goes to stderr: `pyinfra --json` keeps stdout for its report.
"""

import sys
from contextlib import redirect_stdout
from functools import cache

from pyinfra import logger

from stack.confirm import confirm
from stack.errors import UserError

# The deploy's own confirmation of a gateway outage: pyinfra inventory.py deploy.py --data gateway_outage=yes
OUTAGE_FLAG = "gateway_outage"


@cache
def _provider():
    # Imported when a node is recreated only: the AWS provider loads boto3 (about a second).
    from stack.providers import chosen_provider_name, provider_named

    return provider_named(chosen_provider_name(None))


def balanced(settings) -> bool:
    """Whether a load balancer can take a node out while the others serve (never on local hosts)."""
    return _provider().gateway_balanced(settings)


def _step(host, action, settings, name: str) -> bool:
    try:
        with redirect_stdout(sys.stderr):
            action(settings, name)
    except UserError as error:
        host.log_styled(f"{name}: {error}", fg="red", log_func=logger.error)
        return False
    return True


def take_out(state, host, settings, name: str) -> bool:
    """Deregister node `name` and wait for its drain (the deregistration delay)."""
    return _step(host, _provider().gateway_out, settings, name)


def put_back(state, host, settings, name: str) -> bool:
    """Register node `name` again and wait until the load balancer sees it healthy."""
    return _step(host, _provider().gateway_in, settings, name)


def outage_agreed(state, host, name: str, agreed: bool) -> bool:
    """Recreating the container of the only node without a load balancer stops the gateway: go on
    only when the operator said so (--data gateway_outage=yes, or "yes" at the prompt)."""
    what = f"recreate the Kong container on {name}, the only gateway node (no load balancer): an outage"
    try:
        if confirm(what, agreed):
            return True
        host.log_styled(
            f"{name}: not recreated (not confirmed); the running container keeps serving",
            fg="red",
            log_func=logger.error,
        )
    except UserError:
        host.log_styled(
            f"{name}: recreating the Kong container of the only gateway node is an outage (no load balancer): "
            f"re-run with --data {OUTAGE_FLAG}=yes to accept it, or set gateway.nodes: 2; the running "
            "container keeps serving",
            fg="red",
            log_func=logger.error,
        )
    return False
