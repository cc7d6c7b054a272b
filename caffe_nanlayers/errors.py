"""The two kinds of error a user of this package meets.

``NonFiniteError`` is what a check raises when it finds NaN/Inf: a
``FloatingPointError``, so code that already catches floating-point trouble
catches it too. ``UserError`` is a mistake in what the user gave us (a file,
an option, a ``param_str``): the command-line tools print its message as one
line and exit with code 2, never with a traceback.
"""


class NonFiniteError(FloatingPointError):
    """A blob held NaN or ±Inf where a check was placed."""


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""
