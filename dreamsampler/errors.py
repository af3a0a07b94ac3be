"""The one exception type for bad user input: the CLI prints its message alone, without a traceback."""


class InputError(ValueError):
    """Bad user input (file, key, value): the message names the problem and what was expected."""


class DivergedError(InputError):
    """The optimization diverged (a NaN or infinite objective): the settings (learning rates, weights) are off."""
