"""The exceptions `phasegan` raises on purpose.

Every error a user can fix by changing their input is an `InputError`: it names
the field, states the rule, shows the bad value and, where it can, the fix. The
command line turns these into exit status 2 and one line on stderr.
"""

from __future__ import annotations


class PhaseganError(Exception):
    """Base class of the errors raised by `phasegan` itself."""


class InputError(PhaseganError, ValueError):
    """Bad input: a spec field, a parameter, an argument or a store mismatch.

    Parameters
    ----------
    field
        Where the bad value sits, as a dotted path (``model.tau``) or a name.
    rule
        What is allowed, in words (``must be > 0``).
    value
        The offending value, shown with ``repr``; omitted when there is none.
    hint
        Optional: what to do about it.
    """

    def __init__(self, field: str, rule: str, value=..., hint: str = ""):
        self.field = field
        self.rule = rule
        self.value = value
        self.hint = hint
        message = f"{field}: {rule}"
        if value is not ...:
            message += f" (got {value!r})"
        if hint:
            message += f"; {hint}"
        super().__init__(message)


class ParameterError(InputError):
    """A model parameter breaks a rule of MODEL.md (negative noise, d q0^2 >= 1...)."""


class StoreMismatchError(InputError):
    """An existing store was made from another spec."""
