"""The errors a conversion reports to the user; every message says where the problem is and what to do."""

MALFORMED_LINE = "malformed_line"
MISSING_FIELD = "missing_field"
BAD_VALUE = "bad_value"
NON_UTF8 = "non_utf8"
EMPTY_FILE = "empty_file"
CUT_LINE = "cut_line"

_ADVICE = {
    EMPTY_FILE: "check that the download or extraction completed, or rerun with --skip-bad-lines to convert without it",
    CUT_LINE: "download the file again, or rerun with --skip-bad-lines to skip the line and count it in manifest.json",
}
_DEFAULT_ADVICE = "fix or remove the line, or rerun with --skip-bad-lines to skip such lines and count them in manifest.json"


class ConversionError(Exception):
    """An input or option problem the user has to fix; the message is shown without a traceback."""


class RecordError(ValueError):
    """A line whose content cannot be used; raised by the pure parsers, which do not know the file and line."""

    def __init__(self, reason, detail):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class BadLineError(ConversionError):
    """A line (or a whole file) that cannot be converted, located by file and line number."""

    def __init__(self, path, line_number, reason, detail):
        self.path = str(path)
        self.line_number = line_number
        self.reason = reason
        self.detail = detail
        advice = _ADVICE.get(reason, _DEFAULT_ADVICE)
        super().__init__(f"{self.path}, line {line_number}: {detail} ({reason}); {advice}.")
