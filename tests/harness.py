"""Run a project `@deploy` function against one fake host and see what it would do.

No host is touched: the target is a pyinfra `@fake` host, and every fact the deploy asks for is
answered from the `facts` mapping the test passes in (a fact that is not there fails the test with
`MissingFact`, naming the exact key to add, so each test states the host it imagines).
The deploy is prepared like `pyinfra` does, then "executed" without running anything: each
operation's commands are generated in order and the operation is marked as succeeded, changed
when it yields a command. So `_if=other_op.did_change` handlers behave as in a real run where
every command succeeds.

    from pyinfra.facts.server import Which
    from pyinfra.facts.files import File
    from tests.harness import run_deploy

    run = run_deploy(
        deploy_kong,
        facts={
            Which: {"command=docker": None},          # a fact called with arguments
            File: {"path=/opt/kong/declarative/kong.yml": None},
            LinuxDistribution: {...},                 # a fact called without arguments
        },
        groups=["kong"],                              # the target host's groups
        host_data={"private_ip": "10.0.0.5"},
        other_hosts={"backends": [("des-backend-a", {"private_ip": "10.0.0.11"})]},
        kwargs={"settings": settings},                # passed to the deploy function
    )
    run.op("Ensure the Docker engine is installed").changes  # -> True
    run.op("Upload the candidate Kong config").uploads  # -> {"/opt/kong/...": "...file text..."}
    run.changed                                       # names of the operations that change

With `yes=True` the deploy is not previewed first, as with `pyinfra -y`: each operation's body runs
once, when it executes, so `fact_calls` lists exactly what one real run asks each host.

Fact keys: a fact called with arguments is looked up by "name=value" pairs of the arguments that
differ from the fact's defaults, joined with ", " and sorted by name (e.g. "path=/etc/x" or
"command=docker"). The MissingFact message prints the key, so copying it is enough.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

from pyinfra.api import Config, Inventory, State
from pyinfra.api.command import FileDownloadCommand, FileUploadCommand, FunctionCommand, StringCommand
from pyinfra.api.deploy import add_deploy
from pyinfra.connectors.util import CommandOutput
from pyinfra.context import ctx_host, ctx_inventory, ctx_state

TARGET = "@fake/target"
# Global arguments every operation carries by default; left out of Op.global_arguments.
PLAIN_ARGUMENTS = {
    "_shell_executable": "sh",
    "_env": {},
    "_success_exit_codes": [0],
    "_retry_delay": 5,
    "_temp_dir": "/tmp",
}


class MissingFact(AssertionError):
    """The deploy asked for a fact the test did not provide."""


class PerPath:
    """The answer of a fact asked about several paths at once (`paths=[...]`, answering
    {path: value} for those whose value is not None), built from answers given per path as
    {"path=/x": value}: the same dict can answer the fact that reads one path, so a test states
    each file once."""

    def __init__(self, answers: dict[str, Any]):
        self.answers = answers

    def answer(self, paths: list[str]) -> dict:
        missing = [path for path in paths if f"path={path}" not in self.answers]
        if missing:
            raise MissingFact(f"no answer for {', '.join(missing)}: add 'path=...' keys to the PerPath answers")
        return {path: self.answers[f"path={path}"] for path in paths if self.answers[f"path={path}"] is not None}


class ByOperation:
    """A fact answer that changes during the run, as the host does: `before` for the operations whose
    names contain one of `until` (e.g. the clone, and what runs before the host changes), `after` for
    the others. pyinfra asks facts again in each operation; the harness otherwise answers statically."""

    def __init__(self, before: Any, after: Any, until: tuple[str, ...]):
        self.before, self.after, self.until = before, after, until

    def answer(self) -> Any:
        from pyinfra.context import host, state

        names = state.op_meta[host.current_op_hash].names if host.current_op_hash else set()
        return self.before if any(part in name for name in names for part in self.until) else self.after


@dataclass
class Op:
    name: str  # the operation's own name, e.g. "Ensure Docker is installed"
    full_name: str  # with the enclosing deploys, e.g. "Deploy Kong | Ensure Docker is installed"
    changes: bool  # it yielded at least one command (after its `_if` conditions)
    commands: list[str] = field(default_factory=list)  # shell commands, exactly as generated
    uploads: dict[str, str] = field(default_factory=dict)  # remote path -> uploaded text
    conditional: bool = False  # it had an `_if` condition
    global_arguments: dict[str, Any] = field(default_factory=dict)  # _sudo, _env, ...


@dataclass
class Run:
    ops: list[Op]
    fact_calls: list[str]  # every fact asked for, as "files.File(path=/x)", in order

    @property
    def names(self) -> list[str]:
        return [op.name for op in self.ops]

    @property
    def changed(self) -> list[str]:
        return [op.name for op in self.ops if op.changes]

    @property
    def commands(self) -> list[str]:
        return [command for op in self.ops for command in op.commands]

    def op(self, name: str) -> Op:
        matches = [op for op in self.ops if op.name == name]
        if len(matches) != 1:
            raise AssertionError(f"{len(matches)} operations named {name!r}; operations: {self.names}")
        return matches[0]

    def has(self, name: str) -> bool:
        return any(op.name == name for op in self.ops)


def file_summaries(files: dict[str, tuple[str, int, str, str] | None]) -> dict[str, dict | None]:
    """Answers of tasks/uploads.py's FileSummary for files given as path -> (text, mode, user,
    group), or None for a file that is not there."""
    return {
        f"path={path}": None
        if file is None
        else {
            "user": file[2],
            "group": file[3],
            "mode": file[1],
            "sha256": hashlib.sha256(file[0].encode()).hexdigest(),
        }
        for path, file in files.items()
    }


def per_path(one: type, many: type, answers: dict[str, Any]) -> dict[type, Any]:
    """Facts `one` (asked about one path) and `many` (about several, see PerPath) answered from
    the same {"path=/x": value} dict: a test that changes one file's answer changes both."""
    return {one: answers, many: PerPath(answers)}


def fact_key(fact_cls: type, args: tuple, kwargs: dict) -> str:
    """'name=value, ...' for the arguments that differ from the fact command's defaults."""
    if not args and not kwargs:
        return ""
    signature = inspect.signature(fact_cls().command)
    bound = signature.bind(*args, **kwargs)
    given = {name: value for name, value in bound.arguments.items() if value != signature.parameters[name].default}
    return ", ".join(f"{name}={value}" for name, value in sorted(given.items()))


def _fact_answerer(facts: dict[type, Any], calls: list[str]) -> Callable:
    def get_fact(fact_cls, *args, **kwargs):
        # Global arguments (_sudo, ...) may be passed to facts; they do not change the answer.
        kwargs = {name: value for name, value in kwargs.items() if not name.startswith("_")}
        key = fact_key(fact_cls, args, kwargs)
        name = getattr(fact_cls, "name", fact_cls.__name__)
        calls.append(f"{name}({key})")
        if fact_cls not in facts:
            hint = f'{{"{key}": value}}' if key else "value"
            raise MissingFact(f"the deploy asked for fact {name}({key}): add facts[{fact_cls.__name__}] = {hint}")
        answer = facts[fact_cls]
        if isinstance(answer, PerPath):
            return answer.answer(kwargs["paths"])
        if key:
            if not isinstance(answer, dict) or key not in answer:
                raise MissingFact(
                    f"the deploy asked for fact {name}({key}): add {key!r} to facts[{fact_cls.__name__}]"
                    f" (it has {sorted(answer) if isinstance(answer, dict) else answer!r})"
                )
            answer = answer[key]
        return answer.answer() if isinstance(answer, ByOperation) else answer

    return get_fact


def _describe(command) -> tuple[str, tuple[str, str] | None]:
    """A command as text, plus (remote path, text) when it uploads a file."""
    if isinstance(command, StringCommand):
        return command.get_raw_value(), None
    if isinstance(command, FileUploadCommand):
        source = command.src
        if isinstance(source, StringIO):
            text = source.getvalue()
        elif hasattr(source, "read"):
            source.seek(0)
            text = source.read()
            text = text.decode() if isinstance(text, bytes) else text
        else:
            with open(source) as handle:
                text = handle.read()
        return f"upload {command.dest}", (command.dest, text)
    if isinstance(command, FileDownloadCommand):
        return f"download {command.src} to {command.dest}", None
    if isinstance(command, FunctionCommand):
        return f"call {getattr(command.function, '__name__', command.function)}", None
    return repr(command), None


def run_deploy(
    deploy_func: Callable,
    *,
    facts: dict[type, Any],
    groups: list[str] | tuple[str, ...] = (),
    host_data: dict[str, Any] | None = None,
    other_hosts: dict[str, list[tuple[str, dict]]] | None = None,
    args: tuple = (),
    kwargs: dict[str, Any] | None = None,
    yes: bool = False,
    other_facts: dict[str, dict[type, Any]] | None = None,
    failed: tuple[str, ...] = (),
) -> Run:
    """Prepare and simulate `deploy_func` on one fake host; see the module docstring.
    `other_facts`: {other host's name: its facts}, for a deploy that reads another host (those
    hosts count as connected: in state.active_hosts). `failed`: other hosts that failed earlier in
    the run (in state.failed_hosts)."""
    other_hosts = other_hosts or {}
    group_members: dict[str, list] = {name: [] for name in set(groups) | set(other_hosts)}
    for group in groups:
        group_members[group].append((TARGET, dict(host_data or {})))
    names = [(TARGET, dict(host_data or {}))]
    for group, members in other_hosts.items():
        for name, data in members:
            # Other hosts are never connected: they only lend their data (e.g. private_ip).
            fake_name = f"@fake/{name}"
            group_members[group].append((fake_name, dict(data)))
            names.append((fake_name, dict(data)))

    inventory = Inventory(
        (names, {}),
        **{group: (members, {}) for group, members in group_members.items()},
    )
    state = State(inventory, Config(TEMP_DIR="/tmp"), check_for_changes=not yes)
    target = inventory.get_host(TARGET)
    fact_calls: list[str] = []
    target.get_fact = _fact_answerer(facts, fact_calls)  # shadows Host.get_fact on this host only
    for host in inventory:
        if host is not target:
            host.get_fact = _refuse_fact(host.name)
    for name, answers in (other_facts or {}).items():
        other = inventory.get_host(f"@fake/{name}")
        other.get_fact = _fact_answerer(answers, [])
        state.active_hosts.add(other)
    for name in failed:
        state.failed_hosts.add(inventory.get_host(f"@fake/{name}"))

    with ctx_inventory.use(inventory):
        add_deploy(state, deploy_func, *args, host=target, **(kwargs or {}))
        ops = _simulate(state, target)
    return Run(ops=ops, fact_calls=fact_calls)


def _refuse_fact(name: str) -> Callable:
    def get_fact(fact_cls, *args, **kwargs):
        raise MissingFact(f"the deploy asked for a fact of another host ({name}): {fact_cls.__name__}")

    return get_fact


def _simulate(state: State, target) -> list[Op]:
    """Generate every operation's commands in order, marking each as succeeded (changed = any command)."""
    ops = []
    state.is_executing = True
    with ctx_state.use(state), ctx_host.use(target):
        for op_hash in state.get_op_order():
            op_data = state.ops[target].get(op_hash)
            if op_data is None:
                continue
            commands = list(op_data.command_generator())
            op_data.operation_meta.set_complete(True, commands, CommandOutput([]))
            texts, uploads = [], {}
            for command in commands:
                text, upload = _describe(command)
                texts.append(text)
                if upload:
                    uploads[upload[0]] = upload[1]
            full_name = sorted(state.op_meta[op_hash].names)[0]
            arguments = dict(op_data.global_arguments)
            ops.append(
                Op(
                    name=full_name.split(" | ")[-1],
                    full_name=full_name,
                    changes=bool(commands),
                    commands=texts,
                    uploads=uploads,
                    conditional=bool(arguments.get("_if")),
                    global_arguments={
                        key: value
                        for key, value in arguments.items()
                        if key != "name" and value not in (None, [], False) and PLAIN_ARGUMENTS.get(key) != value
                    },
                )
            )
    return ops
