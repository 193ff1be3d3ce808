"""The one base class of every error a user can act on; the CLI prints these as one line."""


class AudioGPT2Error(Exception):
    """A user-facing error whose message names the file or setting, the problem and the fix."""
