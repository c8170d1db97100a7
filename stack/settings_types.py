"""What every part of the settings is made of: a read-only section and the checks of a value.

Each component declares its settings as a `Section` next to its code (tasks/<component>/settings.py,
stack/settings_hosts.py); stack/settings.py composes them. A setting is a class attribute: its type
is `Annotated[type, Check]` (or that `| None`, a list of those, or another section), its value
`setting(default=..., description=...)`. A check tells whether a value fits its type and range,
words the refusal in one line ("expected a whole number from 10 to 10000, got 'lots'") and adds
what a type cannot say (a whole-string pattern, no control characters, no duplicates...).

Plain Python, no validation library: every command reads the settings, and pydantic's import alone
took 0.09 s of the 0.1 s the settings may cost (issue 22).
"""

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterator
from types import NoneType, UnionType
from typing import Annotated, Any, ClassVar, NoReturn, Self, Union, get_args, get_origin

PRIVATE_RANGES = [ipaddress.IPv4Network(range_) for range_ in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


class Refused(Exception):
    """A value refused: `problem` in one line, `at` its key path inside the section being read."""

    def __init__(self, problem: str, at: tuple[int | str, ...] = ()) -> None:
        super().__init__(problem)
        self.problem = problem
        self.at = at


def refuse(problem: str) -> NoReturn:
    raise Refused(problem)


def is_private(network: ipaddress.IPv4Network) -> bool:
    return any(network.subnet_of(range_) for range_ in PRIVATE_RANGES)


class Setting:
    """One setting as declared: its type (the annotation), its default and the line the docs show."""

    def __init__(self, default: Any, default_factory: Callable[[], Any] | None, description: str) -> None:
        self.kind: Any = None
        self.default = default
        self.default_factory = default_factory
        self.description = description

    def fresh_default(self) -> Any:
        # A list default is copied: no section shares a list with another, or with the declaration.
        if self.default_factory:
            return self.default_factory()
        return list(self.default) if isinstance(self.default, list) else self.default


def setting(default: Any = None, *, default_factory: Callable[[], Any] | None = None, description: str = "") -> Any:
    """Declares a setting of a section (typed Any so that `name: int = setting(...)` reads as an int)."""
    return Setting(default, default_factory, description)


class Section:
    """A group of settings: every key optional, unknown keys refused, read-only once read.

    `Section.read(data)` reads config data (None = all defaults), `Section(**values)` the same from
    keywords; both raise Refused, whose `at` names the key path inside the section."""

    fields: ClassVar[dict[str, Setting]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The bases' settings first, the last base's first: Settings(Kong, Db, Backend, Hosts) lists
        # the hosts' keys, then the backends', as config.yml always had them.
        fields: dict[str, Setting] = {}
        for klass in reversed(cls.__mro__):
            if klass is Section or not issubclass(klass, Section):
                continue
            for name, kind in vars(klass).get("__annotations__", {}).items():
                declared = vars(klass).get(name)
                if not isinstance(declared, Setting):
                    raise TypeError(f"{klass.__name__}.{name}: declare it with setting(...)")
                declared.kind = kind
                fields[name] = declared
        cls.fields = fields

    def __init__(self, **values: Any) -> None:
        self._fill(values)

    @classmethod
    def read(cls, given: Any) -> Self:
        # `gateway:` with nothing under it is YAML's null: all defaults, like an empty mapping.
        if given is None:
            given = {}
        if isinstance(given, cls):
            return given
        if not isinstance(given, dict):
            refuse(f"expected a mapping of settings, got {type(given).__name__}")
        section = cls.__new__(cls)
        section._fill(given)
        return section

    def _fill(self, given: dict[Any, Any]) -> None:
        fields = type(self).fields
        # Before any value: a misspelt key is the likelier mistake, and its value means nothing.
        for key in given:
            if key not in fields:
                raise Refused(f"unknown setting (known here: {', '.join(sorted(fields))})", (str(key),))
        for name, field in fields.items():
            if name not in given:
                value = field.fresh_default()
            else:
                try:
                    value = read_value(field.kind, given[name])
                except Refused as refused:
                    raise Refused(refused.problem, (name, *refused.at)) from None
            object.__setattr__(self, name, value)
        self.check_together()

    def check_together(self) -> None:
        """How the section's values go together, once each is fine on its own (raise Refused)."""

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("settings are read-only")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("settings are read-only")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    __hash__ = None  # type: ignore[assignment]  # equal by value, and its lists are lists

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in type(self).fields)
        return f"{type(self).__name__}({values})"

    def as_dict(self) -> dict[str, Any]:
        """Plain dicts and lists, for templates and for writing into the state file."""
        return {name: _plain(getattr(self, name)) for name in type(self).fields}


def _plain(value: Any) -> Any:
    if isinstance(value, Section):
        return value.as_dict()
    return list(value) if isinstance(value, list) else value


def read_value(kind: Any, value: Any) -> Any:
    """`value` checked against the declared type `kind`; raises Refused (`at` an item's index)."""
    origin = get_origin(kind)
    if origin is Union or origin is UnionType:  # `X | None`: nothing, or an X
        if value is None:
            return None
        (inner,) = [part for part in get_args(kind) if part is not NoneType]
        return read_value(inner, value)
    if isinstance(kind, type) and issubclass(kind, Section):
        return kind.read(value)
    if origin is not Annotated:
        raise TypeError(f"{kind!r} has no check: declare it as Annotated[type, Check]")
    base, check = get_args(kind)[:2]
    if not check.fits(value):
        refuse(check.problem(value))
    if get_origin(base) is list:
        (item_kind,) = get_args(base)
        value = [_read_item(item_kind, item, index) for index, item in enumerate(value)]
    problem = check.more(value)
    if problem:
        refuse(problem)
    return value


def _read_item(kind: Any, item: Any, index: int) -> Any:
    try:
        return read_value(kind, item)
    except Refused as refused:
        raise Refused(refused.problem, (index, *refused.at)) from None


class Check:
    """Base of the checks: `fits` the type and range, `problem` tells a value that does not,
    `more` adds the checks a type cannot say (None = fine)."""

    def fits(self, value: Any) -> bool:
        raise NotImplementedError

    def problem(self, value: Any) -> str:
        raise NotImplementedError

    def more(self, value: Any) -> str | None:
        return None


class Text(Check):
    """A non-empty string without control characters; with a pattern, it must match the WHOLE value
    (with `$` and re.match a trailing newline passed, and "dispatch_db\\n" broke pg_hba.conf)."""

    def __init__(self, pattern: re.Pattern[str] | None = None, hint: str = "") -> None:
        self.pattern = pattern
        self.hint = hint

    def fits(self, value: Any) -> bool:
        return isinstance(value, str) and value != ""

    def problem(self, value: Any) -> str:
        return "expected a non-empty string"

    def more(self, value: Any) -> str | None:
        if self.pattern and not self.pattern.fullmatch(value):
            return f"expected {self.hint}, got {value!r}"
        # A NUL, newline or escape sequence ends up in a file, a command line or a terminal.
        if any(unicodedata.category(character) == "Cc" for character in value):
            return f"expected no control characters, got {value!r}"
        return None


class Whole(Check):
    """An int from low to high; true/false and "8080" are refused (YAML would give them silently)."""

    def __init__(self, low: int, high: int, why: str = "") -> None:
        self.low = low
        self.high = high
        self.why = why

    def fits(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high

    def problem(self, value: Any) -> str:
        return f"expected a whole number from {self.low} to {self.high}, got {value!r}{self.why}"


class Flag(Check):
    def fits(self, value: Any) -> bool:
        return isinstance(value, bool)

    def problem(self, value: Any) -> str:
        return f"expected true or false, got {value!r}"


class OneOf(Check):
    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = allowed

    def fits(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.allowed

    def problem(self, value: Any) -> str:
        return f"expected one of {', '.join(self.allowed)}, got {value!r}"


class Items(Check):
    """A non-empty list (its items checked by their own type), by default without duplicates."""

    def __init__(self, unique: bool = True) -> None:
        self.unique = unique

    def fits(self, value: Any) -> bool:
        return isinstance(value, list) and len(value) > 0

    def problem(self, value: Any) -> str:
        return "expected a non-empty list"

    def more(self, value: Any) -> str | None:
        if not self.unique:
            return None
        seen = set()
        for item in value:
            if item in seen:
                return f"expected no duplicates, {item!r} appears twice"
            seen.add(item)
        return None


class Cidr(Check):
    """An IPv4 network written with its host bits zero."""

    def fits(self, value: Any) -> bool:
        return isinstance(value, str)

    def problem(self, value: Any) -> str:
        return f"expected an IPv4 CIDR such as 203.0.113.7/32, got {value!r}"

    def more(self, value: Any) -> str | None:
        try:
            ipaddress.IPv4Network(value)
        except ValueError:
            return f"expected an IPv4 CIDR such as 203.0.113.7/32 (host bits zero), got {value!r}"
        return None


def subsection(field: Setting) -> type[Section] | None:
    """The section a setting holds (`gateway`, `gateway/active`...), None for a single setting."""
    kind = field.kind
    return kind if isinstance(kind, type) and issubclass(kind, Section) else None


def leaves(section: type[Section], prefix: str = "") -> Iterator[tuple[str, Setting]]:
    """Every setting of `section` as ("gateway/active/interval", its declaration), in the declared order."""
    for name, field in section.fields.items():
        inner = subsection(field)
        if inner:
            yield from leaves(inner, f"{prefix}{name}/")
        else:
            yield f"{prefix}{name}", field
