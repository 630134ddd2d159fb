"""Exception types shared by every layer.

Every error raised for bad user input names the file or argument at fault, so that a researcher
reading a traceback from a long evaluation knows which image or option to fix.
"""


class HdrbenchError(Exception):
    """Base class for errors that hdrbench raises on purpose (the CLI prints them without a traceback)."""


class InputError(HdrbenchError, ValueError):
    """An argument or tensor is malformed: wrong shape, NaN/Inf, out of range, unknown name."""


class ImageReadError(HdrbenchError, OSError):
    """An image file is missing, unreadable, truncated or of an unsupported kind."""


class DatasetError(HdrbenchError, FileNotFoundError):
    """A dataset root does not match the layout its card declares."""


class OutputError(HdrbenchError, OSError):
    """An output path cannot be written: an existing folder, a file where a folder is needed, no permission."""


class UnknownNameError(HdrbenchError, KeyError):
    """A registry lookup failed; the message carries close matches ("did you mean ...")."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly instead.
        return str(self.args[0]) if self.args else ""
