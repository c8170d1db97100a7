"""The contract provision.py drives, like terraform's plan/apply/destroy/output, implemented by
`aws` (EC2, stack/aws) and `local` (systemd-nspawn, stack/local); stack/providers.py names them.

What both providers share lives here once: which provider a command is for, the refusal to touch
the state of another project_prefix, the outputs, and a plan's summary line (each provider renders
its own plan lines: AWS aligns resource kinds, local aligns host names).
"""

from abc import ABC, abstractmethod
from dataclasses import replace

from stack.errors import UserError
from stack.options import Options
from stack.outputs import render_outputs
from stack.settings import Settings
from stack.state import State, load_state, save_state

NOTHING_RECORDED = "no hosts recorded yet: run python provision.py first"


class Provider(ABC):
    name: str
    no_balancer = "no load balancer on local hosts"

    @abstractmethod
    def apply(self, settings: Settings, options: Options) -> int:
        """Print the plan, make the hosts match the settings (asking before anything destructive)."""

    @abstractmethod
    def destroy(self, settings: Settings, options: Options) -> int:
        """Remove every host of the project, or the `options.only` ones."""

    @abstractmethod
    def backup(self, settings: Settings, path: str | None) -> int:
        """Pull a fresh pg_dump of the database host to `path` (default .deploy/backups/)."""

    def gateway_balanced(self, settings: Settings) -> bool:
        """Whether the gateway nodes sit behind a load balancer (so one node can leave it while the
        others serve); False on local hosts, where there is none."""
        return False

    def gateway_out(self, settings: Settings, name: str) -> None:
        """Take Kong node `name` out of the load balancer and wait until its connections drained
        (the deregistration delay), printing progress: afterwards it may stop without a client
        noticing."""
        print(f"  {name}: {self.no_balancer}, nothing to take out", flush=True)

    def gateway_in(self, settings: Settings, name: str) -> None:
        """Put Kong node `name` back into the load balancer and wait until it is healthy there."""
        print(f"  {name}: {self.no_balancer}, nothing to put back", flush=True)

    def plan(self, settings: Settings, options: Options) -> int:
        return self.apply(settings, replace(options, dry=True))

    def recover_state(self, settings: Settings) -> State | None:
        """The hosts found without a state file, or None when the provider cannot find them."""
        return None

    def outputs(self, settings: Settings) -> int:
        """Print the hosts and URLs from the state; with no state, record what recover_state finds."""
        state = load_state()
        if state is None:
            state = self.recover_state(settings)
            if state is not None:
                save_state(state)
        if not state or not state.hosts:
            raise UserError(NOTHING_RECORDED)
        print(render_outputs(state, settings))
        return 0


def plan_summary(counts: dict[str, int]) -> str:
    """The last line of every plan, as terraform ends one: 'Plan: 1 to add, 0 to change, 0 to destroy.'"""
    return "Plan: " + ", ".join(f"{count} {what}" for what, count in counts.items()) + "."


def check_recorded_project(state: State | None, settings: Settings) -> None:
    """A state holding the hosts of another project_prefix would be overwritten, and its hosts
    forgotten (they carry the old name and tags): refuse instead."""
    if state and state.hosts and state.prefix != settings.project_prefix:
        raise UserError(
            f"the state holds the hosts of project {state.prefix!r} but project_prefix is "
            f"{settings.project_prefix!r}: set it back and run destroy first, or set DEPLOY_HOME "
            f"to another folder"
        )
