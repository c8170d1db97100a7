"""The registry of the providers provision.py can drive: `aws` (stack/aws) and `local` (stack/local).

Apart from stack/provider.py (the contract and the helpers both providers import) so that no
provider imports, even indirectly, the module that imports every provider.
"""

from collections.abc import Callable

from stack.errors import UserError
from stack.provider import Provider
from stack.state import load_state


def _aws() -> Provider:
    from stack.aws.provider import AwsProvider

    return AwsProvider()


def _local() -> Provider:
    from stack.local.provider import LocalProvider

    return LocalProvider()


# Loaders, not instances: the AWS side imports boto3 (about a second) only when a command needs it.
PROVIDERS: dict[str, Callable[[], Provider]] = {"aws": _aws, "local": _local}
DEFAULT = "aws"


def chosen_provider_name(asked: str | None) -> str:
    """--provider, else the one the state records, else aws; a --provider contradicting the state is refused."""
    state = load_state()
    recorded = state.provider if state else None
    if asked and recorded and asked != recorded:
        raise UserError(
            f"the state records {recorded} hosts; run python provision.py --provider {recorded} destroy "
            f"first, or set DEPLOY_HOME to another folder"
        )
    return asked or recorded or DEFAULT


def provider_named(name: str) -> Provider:
    return PROVIDERS[name]()
