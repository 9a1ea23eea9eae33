"""`python -m facerec.cli`: the same as the `facerec` command."""

from . import entry

entry()
