"""pyinfra dynamic inventory: the hosts recorded by `python provision.py`, as groups db, backends, kong.

Usage: pyinfra inventory.py deploy.py   (works unchanged for --provider aws and --provider local)
"""

from stack import pyinfra_speedups
from stack.errors import UserError, exit_with
from stack.inventory import groups_from_state

# Every pyinfra run of the project loads this file first: operations cost less CPU from here on.
pyinfra_speedups.apply()

try:
    _groups = groups_from_state()
except UserError as _error:
    exit_with(_error)

db = _groups["db"]
backends = _groups["backends"]
kong = _groups["kong"]
