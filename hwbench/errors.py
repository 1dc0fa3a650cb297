"""Exception classes, by audience (see docs/architecture.md, "Errors, by audience").

* :class:`UserError` and its subclasses are mistakes a user can fix: the CLI prints
  them as one line and exits with code 2, never with a traceback.
* :class:`DeviceError` and subclasses wrap vendor errors (``raise ... from e``).
* Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix. ``str(err)`` is the whole one-line message."""


class ConfigError(UserError):
    """A suite file is invalid. The message names the file and the field."""


class ResultsError(UserError):
    """A results file cannot be read, upgraded or resumed onto."""


class DeviceError(Exception):
    """A device could not be queried. Chained from the vendor's exception."""


class DeviceNotSupported(DeviceError):
    """The device or a metric is absent on this machine."""
