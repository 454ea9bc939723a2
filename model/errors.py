"""The one exception type of the VELCRO algorithm code.

Every user-facing mistake (bad threshold tuple, unknown task, missing data set, too few images, ...)
raises `VelcroError` with a message that names the problem and the fix, so the CLI can print it
without a traceback and tests can assert on it.
"""
from __future__ import annotations


class VelcroError(ValueError):
    """A user-facing error of the VELCRO model code: the message says what is wrong and what to do."""
