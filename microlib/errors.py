"""The one exception type the CLI turns into a single clear error line."""

from __future__ import annotations


class MicrolibError(Exception):
    """Bad input or an unrecoverable condition, reported as one line.

    Parameters
    ----------
    reason : str
        What is wrong, phrased for the user.
    entry : str, optional
        The entry (DoITPoMS id or ``microstructureNNN``) the error belongs to; the CLI
        prefixes the line with it so a log names the culprit.
    """

    def __init__(self, reason: str, entry: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.entry = entry

    def __str__(self) -> str:
        return f"{self.entry}: {self.reason}" if self.entry else self.reason
