"""Facts that several operations of a deploy need, asked of each host once per run.

pyinfra 3 keeps no fact cache: every `host.get_fact` sends its command again, and some answers
cost (the database's deploy markers start Python, Django and a database connection, ~0.6 s).
Operations that need the same answer ask it here instead: the first asks the host, the next
reuse that answer, until an operation that changes what the fact says calls `forget` before it
yields its commands; the operations after it then ask the host again and see the change.

Answers are kept per host and per phase: a preview (pyinfra's prepare, or `--dry`) reads the host
as it was before the run; the execution asks again.
"""

from typing import Any
from weakref import WeakKeyDictionary

from pyinfra import host, state
from pyinfra.context import ctx_host

_answers: "WeakKeyDictionary[Any, dict]" = WeakKeyDictionary()


def _kept() -> dict:
    return _answers.setdefault(ctx_host.get(), {})


def _key(fact_cls: type, kwargs: dict) -> tuple:
    return bool(state.is_executing), fact_cls, repr(sorted(kwargs.items()))


def fact(fact_cls: type, **kwargs) -> Any:
    """`host.get_fact(fact_cls, **kwargs)`, asked of the host only the first time in this phase
    (or the first time since `forget`)."""
    kept, key = _kept(), _key(fact_cls, kwargs)
    if key not in kept:
        kept[key] = host.get_fact(fact_cls, **kwargs)
    return kept[key]


def forget(fact_cls: type) -> None:
    """Drop this host's answers of `fact_cls` (every argument): the calling operation changes them."""
    kept = _kept()
    for key in [key for key in kept if key[1] is fact_cls]:
        del kept[key]
