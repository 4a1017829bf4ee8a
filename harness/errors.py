"""Errors that mean "bad input": the command line prints them as one line and exits 2."""


class HarnessError(Exception):
    """Bad input from the user. The message names the culprit and says what is wrong."""


class DataError(HarnessError):
    """A data file or folder that cannot be used."""


class ConfigError(HarnessError):
    """A setting, flag or grid file that cannot be used."""


class DiskFull(HarnessError):
    """A write that found no space left on the device (or over quota). Not the
    user's input, but told the same way: one line naming the file, exit 2."""

    def __init__(self, path, why="no space left on device"):
        super().__init__(f"{why} while writing {path}")
        self.path = path


class LinkRefused(HarnessError):
    """A file or folder of a results folder that is a symbolic link: never
    written through, since it could point anywhere outside ``--out``."""


class BackendLost(HarnessError):
    """The cluster a sweep trains on is gone (its Dask scheduler), or a
    run's record did not reach the sweep: one line, exit 2, after the
    summary of what finished is written."""
