"""The one settings loader: the settings of every component in one read-only model, and the file.

Each component owns its settings, defaults and checks next to its code: the hosts in
stack/settings_hosts.py, tasks/backend/settings.py, tasks/db/settings.py and tasks/kong/settings.py
(`kong_admin_cidr` and the `gateway:` section). `Settings` composes them under the same flat keys
config.yml has always had. `load_settings()` reads `config.yml` (or the file named by
DEPLOY_CONFIG) and refuses unknown keys, wrong types and bad values with one line naming the key
path. config.example.yml and the table in docs/configuration.md are generated from the models (stack/settings_docs.py).
"""

import os
from pathlib import Path
from typing import Any

import yaml

from stack.errors import SettingsError
from stack.settings_hosts import HostSettings
from stack.settings_types import Refused
from tasks.backend.settings import BackendSettings
from tasks.db.settings import DbSettings
from tasks.kong.settings import KongSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config.yml"


# The LAST base's settings come first: the keys follow hosts, backend, db, kong.
class Settings(KongSettings, DbSettings, BackendSettings, HostSettings):
    """Every setting, read-only; sections are models too (`settings.gateway.active.interval`)."""


def _where(loc: tuple[int | str, ...]) -> str:
    """("gateway", "route_paths", 0) -> "gateway/route_paths: item 1", as the old loader said it."""
    where = ""
    for part in loc:
        if isinstance(part, int):
            where += f": item {part + 1}"
        else:
            where += f"/{part}" if where else part
    return where or "the top level"


def _one_line(refused: Refused) -> str:
    # The keys are read in order, as the hand-written loader did: the first refused is the one told.
    # Every setting's check words its own refusal (tests/stack/test_settings.py holds each to it).
    return f"{_where(refused.at)}: {refused.problem}"


def config_path() -> Path:
    """DEPLOY_CONFIG if set (it must exist), else config.yml at the project root (optional)."""
    named = os.environ.get("DEPLOY_CONFIG")
    return Path(named).expanduser() if named else DEFAULT_CONFIG


def load_settings(path: Path | None = None) -> Settings:
    """Read, validate and return the settings. Raises SettingsError (exit status 2) on bad input."""
    explicit = path is not None or bool(os.environ.get("DEPLOY_CONFIG"))
    path = path or config_path()
    if not path.exists():
        if explicit:
            raise SettingsError(f"{path}: settings file not found (check DEPLOY_CONFIG)")
        return defaults()
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as problem:
        raise SettingsError(f"{path}: cannot read it ({problem.strerror})") from None
    except UnicodeDecodeError as problem:
        raise SettingsError(
            f"{path}: not UTF-8 text (byte 0x{problem.object[problem.start]:02x} at offset "
            f"{problem.start}): save it as UTF-8"
        ) from None
    global _last_loaded
    if _last_loaded is not None and _last_loaded[:2] == (path, text):
        return _last_loaded[2]
    given = _parse_yaml(path, text)
    try:
        settings = settings_from(given)
    except SettingsError as problem:
        raise SettingsError(f"{path.name}: {problem}") from None
    _last_loaded = (path, text, settings)
    return settings


# The last file read, its text and its settings (frozen): a deploy loads them for every host and
# component (20 times for 10 hosts, ~7 ms each); the same text is not parsed and checked again.
_last_loaded: tuple[Path, str, "Settings"] | None = None


def _parse_yaml(path: Path, text: str) -> Any:
    """The file's data; a YAML error or a key given twice (PyYAML keeps the last) is one line."""
    try:
        _refuse_duplicate_keys(path, yaml.compose(text, Loader=yaml.SafeLoader), "")
        return yaml.safe_load(text)
    except yaml.reader.ReaderError as problem:
        # Raised for raw control characters (a NUL byte...); its own text spans two lines.
        raise SettingsError(
            f"{path}: control character 0x{problem.character:02x} at character {problem.position}: remove it"
        ) from None
    except yaml.YAMLError as problem:
        mark = getattr(problem, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise SettingsError(f"{path}{line}: not valid YAML ({getattr(problem, 'problem', problem)})") from None


def _refuse_duplicate_keys(path: Path, node: Any, where: str) -> None:
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(path, item, where)
    if not isinstance(node, yaml.MappingNode):
        return
    seen = set()
    for key, value in node.value:
        name = key.value if isinstance(key, yaml.ScalarNode) else None
        if name is not None and name in seen:
            raise SettingsError(
                f"{path} line {key.start_mark.line + 1}: {where}{name} is given twice "
                "(the last would win silently): keep one"
            )
        seen.add(name)
        _refuse_duplicate_keys(path, value, f"{where}{name}/")


def settings_from(values: Any) -> Settings:
    """Settings from a mapping, as if read from a file (tests build them inline this way)."""
    try:
        return Settings.read(values)
    except Refused as refused:
        raise SettingsError(_one_line(refused)) from None


def defaults() -> Settings:
    return Settings()


def host_names(settings: Settings, db_host: bool = True) -> dict[str, tuple[str, str | None]]:
    """Every host of the design, name -> (role, backend key): db first, then backends, then the kong
    nodes (the first keeps the one-node name, so scaling out never replaces it).

    `db_host=False` leaves the db host out: the AWS provider's hosts with db_service rds (RDS runs the
    database). The local provider keeps the default: it runs a database host with rds too.
    """
    prefix = settings.project_prefix
    names: dict[str, tuple[str, str | None]] = {f"{prefix}-db": ("db", None)} if db_host else {}
    for key in settings.backends:
        names[f"{prefix}-backend-{key}"] = ("backend", key)
    for node in range(1, settings.gateway.nodes + 1):
        names[f"{prefix}-kong" if node == 1 else f"{prefix}-kong-{node}"] = ("kong", None)
    return names
