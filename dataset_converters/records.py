"""Turning input lines into records: JSON / dict-literal / delimited parsing and field checks.

The parsers are pure (text in, values out) and raise :class:`~.errors.RecordError`;
:class:`RecordReader` attaches the file and line number and applies the bad-line policy.
"""
import ast
import csv
import json
import math
from dataclasses import dataclass

from .bad_lines import BadLineLog
from .errors import BAD_VALUE, EMPTY_FILE, MALFORMED_LINE, MISSING_FIELD, BadLineError, ConversionError, RecordError
from .io import iter_lines

FORBIDDEN_TOKEN_CHARACTERS = frozenset("\t\r\n")
# The nodes of what ast.literal_eval reads (a sign is a UnaryOp); the first other node of a line it
# rejects is the expression named in the error. BinOp is left out: in metadata it is never a complex number.
_LITERAL_NODES = (ast.Constant, ast.Dict, ast.List, ast.Tuple, ast.Set, ast.UnaryOp, ast.unaryop, ast.expr_context)


def parse_json_object(text, allow_python_literal=False):
    """A dict from one JSON line; with ``allow_python_literal``, also from a Python dict literal.

    The 2014 Amazon metadata is written as Python literals (single quotes); ``ast.literal_eval``
    reads those without executing anything.
    """
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as json_error:
        if not allow_python_literal:
            raise RecordError(MALFORMED_LINE, f"not valid JSON ({json_error})") from None
        try:
            value = python_literal(text)
        except ValueError as literal_error:
            raise RecordError(
                MALFORMED_LINE, f"neither JSON ({json_error}) nor a Python dict literal ({literal_error})"
            ) from None
    if not isinstance(value, dict):
        raise RecordError(MALFORMED_LINE, f"expected an object {{...}}, found a {type(value).__name__}")
    return value


def python_literal(text):
    """The value of a Python literal, read with ``ast.literal_eval`` (nothing is executed).

    Raises ``ValueError`` saying why the text is not a literal: the syntax error and its column,
    or the first part that is an expression rather than a literal (a name, a call...).
    """
    indent = len(text) - len(text.lstrip(" \t"))
    try:
        tree = ast.parse(text[indent:], mode="eval")
    except SyntaxError as error:
        raise ValueError(f"{error.msg} at column {indent + (error.offset or 1)}") from None
    except (MemoryError, RecursionError):
        raise ValueError("nested too deeply") from None
    try:
        return ast.literal_eval(tree)
    except ValueError:
        expression = next((node for node in ast.walk(tree.body) if not isinstance(node, _LITERAL_NODES)), tree.body)
        source = ast.get_source_segment(text[indent:], expression)
        raise ValueError(
            f"{_shortened(source)!r} at column {indent + expression.col_offset + 1} is not a literal; "
            "only strings, numbers, lists, tuples, dicts, sets, True, False and None are read"
        ) from None
    except (TypeError, MemoryError, RecursionError) as error:  # e.g. a list as a dict key: unhashable
        raise ValueError(f"{type(error).__name__}: {error}") from None


def _shortened(text, limit=40):
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_csv_line(text):
    """The values of one comma-separated line, honouring double quotes."""
    return next(csv.reader((text,)))


def split_fields(text, separator, names):
    """The ``separator``-separated values of one line, which must have exactly one per name."""
    values = text.split(separator)
    if len(values) != len(names):
        raise RecordError(
            MALFORMED_LINE,
            f"expected {len(names)} {separator!r}-separated fields ({', '.join(names)}), found {len(values)}",
        )
    return values


def require_field(record, field):
    """``record[field]``, which must be present and not null or empty."""
    value = record.get(field)
    if value is None or value == "":
        raise RecordError(MISSING_FIELD, f"field {field!r} is missing or empty")
    return value


def token_field(record, field):
    """``record[field]`` as an id (see :func:`as_token`); the field must be present."""
    value = record.get(field)
    # Fast path for the usual clean string id (this runs for every line of multi-GB dumps): a
    # printable string has no tabs or line breaks, and then only a plain space could need stripping.
    if value.__class__ is str and value.isprintable() and value and value[0] != " " and value[-1] != " ":
        return value
    return as_token(require_field(record, field), field)


def number_field(record, field):
    """``record[field]`` as a finite float (see :func:`as_number`); the field must be present."""
    return as_number(require_field(record, field), field)


def as_token(value, field):
    """An id as written to the atomic files: a non-empty string without tabs or line breaks."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(BAD_VALUE, f"field {field!r} should be a string id, found {value!r}")
    token = str(value).strip()
    if not token or not FORBIDDEN_TOKEN_CHARACTERS.isdisjoint(token):
        raise RecordError(BAD_VALUE, f"field {field!r} is not a usable id: {value!r}")
    return token


def as_number(value, field):
    """A finite float from a JSON number or a numeric string."""
    if isinstance(value, bool):
        raise RecordError(BAD_VALUE, f"field {field!r} should be a number, found {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise RecordError(BAD_VALUE, f"field {field!r} should be a number, found {value!r}") from None
    if not math.isfinite(number):
        raise RecordError(BAD_VALUE, f"field {field!r} should be a finite number, found {value!r}")
    return number


@dataclass
class RecordReader:
    """Reads input files record by record, sending unusable lines to ``bad_lines``."""

    bad_lines: BadLineLog
    show_progress: bool = False

    def records(self, source, parse, encoding="utf-8", fallback_encoding=None, last_line_check=None):
        """Yield ``parse(text)`` for each data line of ``source``; lines it rejects become bad lines.

        ``last_line_check(record)``, when given, also judges the record of a last line that has no
        line ending (the file may have been cut inside it), raising :class:`RecordError` to reject it.
        """
        lines = iter_lines(source, self.bad_lines, encoding, fallback_encoding, self.show_progress)
        yield from self._parsed(lines, source, parse, last_line_check)

    def csv_records(self, source, required_columns, parse, last_line_check=None):
        """Yield ``parse(row)`` for each data line of a CSV file whose first line is its header.

        ``row`` maps the header's column names to the line's values; ``last_line_check`` as in :meth:`records`.
        """
        lines = iter_lines(source, self.bad_lines, show_progress=self.show_progress)
        header = next(lines, None)
        if header is None:
            return
        header_line_number, header_text = header
        columns = [column.strip() for column in parse_csv_line(header_text)]
        missing = [column for column in required_columns if column not in columns]
        if missing:
            raise ConversionError(
                f"{source.path}, line {header_line_number}: the header {header_text!r} lacks the column(s) "
                f"{', '.join(missing)}; expected a header line naming {', '.join(required_columns)}"
            )

        def parse_row(text):
            values = parse_csv_line(text)
            if len(values) != len(columns):
                raise RecordError(
                    MALFORMED_LINE, f"expected {len(columns)} comma-separated values ({','.join(columns)}), found {len(values)}"
                )
            return parse(dict(zip(columns, values)))

        yield from self._parsed(lines, source, parse_row, last_line_check)
        if source.records == 0 and not self.bad_lines.counts_for(source.path):
            self.bad_lines.reject(
                BadLineError(source.path, header_line_number, EMPTY_FILE, "the file has a header but no data lines")
            )

    def _parsed(self, lines, source, parse, last_line_check):
        for line_number, text in lines:
            try:
                record = parse(text)
                if last_line_check is not None and line_number == source.unterminated_line:
                    last_line_check(record)
            except RecordError as error:
                self.bad_lines.reject(BadLineError(source.path, line_number, error.reason, error.detail))
                continue
            source.records += 1
            yield record
