"""What happens to a bad input line: stop the conversion, or (with --skip-bad-lines) skip it and count it."""
from collections import Counter

MAX_EXAMPLES = 20


class BadLineLog:
    """Raises the first bad line's error, or, when skipping, counts bad lines by file and reason.

    A few examples (file, line, reason, detail) are kept so that skipped lines can be found again.
    """

    def __init__(self, skip_bad_lines):
        self.skip_bad_lines = skip_bad_lines
        self.counts_by_file = {}
        self.examples = []

    def reject(self, error):
        """Handle one :class:`~.errors.BadLineError`: re-raise it, or record it when skipping bad lines."""
        if not self.skip_bad_lines:
            raise error
        self.counts_by_file.setdefault(error.path, Counter())[error.reason] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(
                {"file": error.path, "line": error.line_number, "reason": error.reason, "detail": error.detail}
            )

    def counts_for(self, path):
        """Skipped lines of one file, by reason."""
        return dict(sorted(self.counts_by_file.get(str(path), Counter()).items()))

    def totals(self):
        """Skipped lines of all files, by reason."""
        total = Counter()
        for counts in self.counts_by_file.values():
            total.update(counts)
        return dict(sorted(total.items()))
