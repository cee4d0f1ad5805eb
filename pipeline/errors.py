"""The one user-facing error type.

Every failure a user can fix (bad config key, missing mask, corrupt image, ...) is raised as
``PipelineError`` with a one-line message that names the file or key and says how to fix it.
The CLI prints it as one line and exits with code 1, without a traceback.
"""


class PipelineError(Exception):
    """A user-fixable failure; ``str(err)`` is the one-line message shown to the user."""
