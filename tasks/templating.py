"""Jinja2 over the project's templates/ folder, strict: a missing variable is an error, not ''."""

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from stack.settings import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "templates"

_environment = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)


def render_template(name: str, **values) -> str:
    return _environment.get_template(name).render(**values)
