"""User-facing errors: one line that names the bad value and the fix."""


class SqjaxError(Exception):
    """An error caused by user input (a path, a config key, a data row).

    The CLI prints these as one line and exits non-zero; anything else is a bug and
    keeps its traceback.
    """
