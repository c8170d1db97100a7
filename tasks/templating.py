"""Jinja2 over the project's templates/ folder, strict: a missing variable is an error, not ''."""

from functools import cache

from stack.settings import PROJECT_ROOT

TEMPLATES = PROJECT_ROOT / "templates"


@cache
def _environment():
    # Imported on first render: provision.py status and logs read the renderers' constants
    # (paths, names) and should not pay for Jinja2.
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render_template(name: str, **values) -> str:
    return _environment().get_template(name).render(**values)
