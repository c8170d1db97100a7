"""provision.py --provider aws: the provider contract over the modules that do the work (apply,
destroy, backup), imported on first use: boto3 costs about a second that `outputs` never pays."""

from stack.aws.credentials import credentials_configured
from stack.options import Options
from stack.provider import Provider
from stack.settings import Settings
from stack.state import State


class AwsProvider(Provider):
    name = "aws"

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
