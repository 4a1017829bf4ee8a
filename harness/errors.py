"""Errors that mean "bad input": the command line prints them as one line and exits 2."""


class HarnessError(Exception):
    """Bad input from the user. The message names the culprit and says what is wrong."""


class DataError(HarnessError):
    """A data file or folder that cannot be used."""


class ConfigError(HarnessError):
    """A setting, flag or grid file that cannot be used."""
