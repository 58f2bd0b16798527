"""Streaming the lines of an input file, plain or gzip, one line at a time.

Compression is detected from the first bytes, not the extension: dumps are often re-compressed or
unpacked without renaming. Lines are decoded one by one so that a bad byte is reported with its
line number and, with --skip-bad-lines, costs only that line.
"""
import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .errors import EMPTY_FILE, NON_UTF8, BadLineError, ConversionError

GZIP_MAGIC = b"\x1f\x8b"
READ_BUFFER_BYTES = 1 << 20
BYTE_ORDER_MARK = "\ufeff"


@dataclass
class SourceFile:
    """One input file and what reading it found; ``role`` names it in messages (e.g. ``reviews``)."""

    role: str
    path: Path
    lines: int = 0
    blank_lines: int = 0
    records: int = 0
    # The number of the last line when it has no line ending: a file cut short ends inside a line.
    unterminated_line: int | None = None

    def require_exists(self):
        """Fail early, before any work, when the file is missing."""
        if not self.path.is_file():
            raise ConversionError(f"{self.role} file not found: {self.path}")

    def describe(self, bad_lines):
        """The manifest entry: where the file is, its hash, and what was read from it."""
        return {
            "role": self.role,
            "path": str(self.path),
            "bytes": self.path.stat().st_size,
            "sha256": sha256_of_file(self.path),
            "compression": detect_compression(self.path),
            "lines": self.lines,
            "blank_lines": self.blank_lines,
            "records": self.records,
            "bad_lines": bad_lines.counts_for(self.path),
        }


def detect_compression(path):
    """``"gzip"`` when the file starts with the gzip magic bytes, else ``"plain"``."""
    with open(path, "rb") as stream:
        return "gzip" if stream.read(len(GZIP_MAGIC)) == GZIP_MAGIC else "plain"


def open_binary(path):
    """Open a plain or gzip file for reading bytes, decompressing transparently."""
    if detect_compression(path) == "gzip":
        return gzip.open(path, "rb")
    return open(path, "rb", buffering=READ_BUFFER_BYTES)


def sha256_of_file(path):
    """Hex SHA-256 of the file's bytes as stored (compressed files are hashed compressed)."""
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def iter_lines(source, bad_lines, encoding="utf-8", fallback_encoding=None, show_progress=False):
    """Yield ``(line_number, text)`` for every non-blank line of ``source``, without its line ending.

    A line that does not decode goes to ``bad_lines`` (or, with ``fallback_encoding``, is decoded with
    it instead); blank lines are counted in ``source.blank_lines``. A file without any data line is
    reported as an ``empty_file`` bad line.
    """
    source.require_exists()
    path = source.path
    line_number = 0
    data_lines = 0
    with open_binary(path) as stream:
        progress = tqdm(stream, desc=f"{source.role} ({path.name})", unit=" lines", disable=not show_progress)
        try:
            for line_number, raw in enumerate(progress, start=1):
                try:
                    text = raw.decode(encoding)
                except UnicodeDecodeError as error:
                    if fallback_encoding is None:
                        bad_byte = raw[error.start]
                        bad_lines.reject(BadLineError(
                            path, line_number, NON_UTF8,
                            f"byte 0x{bad_byte:02x} at byte {error.start + 1} of the line is not valid {encoding}",
                        ))
                        continue
                    text = raw.decode(fallback_encoding)
                if line_number == 1:
                    text = text.removeprefix(BYTE_ORDER_MARK)
                if text.isspace():
                    source.blank_lines += 1
                    continue
                data_lines += 1
                if not raw.endswith(b"\n"):
                    source.unterminated_line = line_number
                yield line_number, text.rstrip("\r\n")
        except (OSError, EOFError, zlib.error) as error:
            raise ConversionError(
                f"{path}, after line {line_number}: the file cannot be read further ({error}); "
                "it is probably truncated or corrupt, download it again"
            ) from error
        finally:
            progress.close()
    source.lines = line_number
    if data_lines == 0:
        bad_lines.reject(BadLineError(path, 1, EMPTY_FILE, "the file has no data lines"))
