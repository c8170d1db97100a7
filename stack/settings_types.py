"""What every part of the settings is made of: a read-only section model and the checks of a value.

Each component declares its settings as a `Section` next to its code (tasks/<component>/settings.py,
stack/settings_hosts.py); stack/settings.py composes them. A check is the metadata of an
`Annotated` type: pydantic validates the type and the range itself, the check tells a refusal as
one line ("expected a whole number from 10 to 10000, got 'lots'") and adds what pydantic has no
keyword for (a whole-string pattern, no control characters, no duplicates...).
"""

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_core import CoreSchema, InitErrorDetails, PydanticCustomError, core_schema

# The error type of every refusal told here; stack/settings.py prints its text as it is.
REFUSED = "setting"

PRIVATE_RANGES = [ipaddress.IPv4Network(range_) for range_ in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def refuse(problem: str) -> NoReturn:
    # Without a context pydantic keeps the text as it is: braces in a user's value stay braces.
    raise PydanticCustomError(REFUSED, problem)


def refused_at(key: str, problem: str, value: Any) -> ValidationError:
    """A refusal of the key `key` inside the section being validated (its path then ends in key)."""
    return ValidationError.from_exception_data(
        "settings", [InitErrorDetails(type=PydanticCustomError(REFUSED, problem), loc=(key,), input=value)]
    )


def is_private(network: ipaddress.IPv4Network) -> bool:
    return any(network.subnet_of(range_) for range_ in PRIVATE_RANGES)


class Section(BaseModel):
    """A group of settings: every key optional, unknown keys refused, read-only once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _a_mapping_of_known_keys(cls, given: Any) -> Any:
        # `gateway:` with nothing under it is YAML's null: all defaults, like an empty mapping.
        if given is None:
            return {}
        if isinstance(given, Section):
            return given
        if not isinstance(given, dict):
            refuse(f"expected a mapping of settings, got {type(given).__name__}")
        # Before any value: a misspelt key is the likelier mistake, and its value means nothing.
        for key in given:
            if key not in cls.model_fields:
                known = ", ".join(sorted(cls.model_fields))
                raise refused_at(str(key), f"unknown setting (known here: {known})", given[key])
        return given

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("settings are read-only")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("settings are read-only")

    def as_dict(self) -> dict[str, Any]:
        """Plain dicts and lists, for templates and for writing into the state file."""
        return self.model_dump()


class Check:
    """Base of the checks: `tighten` pydantic's schema of the type, `problem` tells its refusal,
    `more` adds the checks pydantic has no keyword for (None = fine)."""

    def tighten(self, schema: CoreSchema) -> CoreSchema:
        return schema

    def problem(self, value: Any) -> str:
        raise NotImplementedError

    def more(self, value: Any) -> str | None:
        return None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        def validate(value: Any, pydantic_check: Callable[[Any], Any]) -> Any:
            try:
                value = pydantic_check(value)
            except ValidationError as error:
                if any(detail["loc"] for detail in error.errors()):
                    raise  # an item of a list refused: its own problem, already told
                refuse(self.problem(value))
            problem = self.more(value)
            if problem:
                refuse(problem)
            return value

        return core_schema.no_info_wrap_validator_function(validate, self.tighten(handler(source)))


def _with(schema: CoreSchema, **changes: Any) -> CoreSchema:
    return cast(CoreSchema, {**schema, **changes})


@dataclass(frozen=True)
class Text(Check):
    """A non-empty string without control characters; with a pattern, it must match the WHOLE value
    (with `$` and re.match a trailing newline passed, and "dispatch_db\\n" broke pg_hba.conf)."""

    pattern: re.Pattern[str] | None = None
    hint: str = ""

    def tighten(self, schema: CoreSchema) -> CoreSchema:
        return _with(schema, strict=True, min_length=1)

    def problem(self, value: Any) -> str:
        return "expected a non-empty string"

    def more(self, value: Any) -> str | None:
        if self.pattern and not self.pattern.fullmatch(value):
            return f"expected {self.hint}, got {value!r}"
        # A NUL, newline or escape sequence ends up in a file, a command line or a terminal.
        if any(unicodedata.category(character) == "Cc" for character in value):
            return f"expected no control characters, got {value!r}"
        return None


@dataclass(frozen=True)
class Whole(Check):
    """An int from low to high; true/false and "8080" are refused (YAML would give them silently)."""

    low: int
    high: int
    why: str = ""

    def tighten(self, schema: CoreSchema) -> CoreSchema:
        return core_schema.int_schema(strict=True, ge=self.low, le=self.high)

    def problem(self, value: Any) -> str:
        return f"expected a whole number from {self.low} to {self.high}, got {value!r}{self.why}"


@dataclass(frozen=True)
class Flag(Check):
    def tighten(self, schema: CoreSchema) -> CoreSchema:
        return core_schema.bool_schema(strict=True)

    def problem(self, value: Any) -> str:
        return f"expected true or false, got {value!r}"


@dataclass(frozen=True)
class OneOf(Check):
    allowed: tuple[str, ...]

    def tighten(self, schema: CoreSchema) -> CoreSchema:
        return core_schema.literal_schema(list(self.allowed))

    def problem(self, value: Any) -> str:
        return f"expected one of {', '.join(self.allowed)}, got {value!r}"


@dataclass(frozen=True)
class Items(Check):
    """A non-empty list (its items checked by their own type), by default without duplicates."""

    unique: bool = True

    def tighten(self, schema: CoreSchema) -> CoreSchema:
        return _with(schema, strict=True, min_length=1)

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


@dataclass(frozen=True)
class Cidr(Check):
    """An IPv4 network written with its host bits zero."""

    def tighten(self, schema: CoreSchema) -> CoreSchema:
        return core_schema.str_schema(strict=True)

    def problem(self, value: Any) -> str:
        return f"expected an IPv4 CIDR such as 203.0.113.7/32, got {value!r}"

    def more(self, value: Any) -> str | None:
        try:
            ipaddress.IPv4Network(value)
        except ValueError:
            return f"expected an IPv4 CIDR such as 203.0.113.7/32 (host bits zero), got {value!r}"
        return None


def subsection(field: FieldInfo) -> type[Section] | None:
    """The section model a field holds (`gateway`, `gateway/active`...), None for a single setting."""
    kind = field.annotation
    return kind if isinstance(kind, type) and issubclass(kind, Section) else None


def leaves(section: type[Section], prefix: str = "") -> Iterator[tuple[str, FieldInfo]]:
    """Every setting of `section` as ("gateway/active/interval", its field), in the models' order."""
    for name, field in section.model_fields.items():
        inner = subsection(field)
        if inner:
            yield from leaves(inner, f"{prefix}{name}/")
        else:
            yield f"{prefix}{name}", field
