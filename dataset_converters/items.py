"""Item metadata as written to the ``.item`` file: title, categories, a short description, an image.

RecBole atomic files are tab-separated with one record per line and space-separated ``token_seq``
values, so all text is flattened to single-spaced plain text and each category becomes one token.
"""
import html
import re
from dataclasses import dataclass

# A tag starts as in a browser's HTML tokenizer: '<' then a letter, '/', '!' or '?' ('a < b' stays text),
# and ends at '>'. A dump cut inside a tag ('<span class="a-size-medium"') leaves it unterminated: only
# an HTML element's name at the end counts as one, so text such as 'Size S<M Shirt' or 'x<y' is kept.
_HTML_TAG = re.compile(
    r"<[A-Za-z/!?][^>]*>"
    r"|</?(?:a|abbr|b|br|div|em|font|h[1-6]|i|img|li|ol|p|small|span|strong|sub|sup|table|td|th|tr|u|ul)(?:\s[^<>]*)?$",
    re.IGNORECASE,
)
# Tabs, line breaks and other control characters would break the atomic file's columns or rows.
_SEPARATORS = re.compile(r"[\s\x00-\x1f\x7f]+")


def clean_text(value):
    """Single-line plain text from a string, a number or a (nested) list of strings; ``""`` for anything else.

    HTML tags, also unterminated ones, are dropped and entities decoded (Amazon metadata carries both).
    """
    if isinstance(value, (list, tuple)):
        text = " ".join(clean_text(part) for part in value)
    elif isinstance(value, str):
        text = html.unescape(_HTML_TAG.sub(" ", value))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
    else:
        return ""
    return _SEPARATORS.sub(" ", text).strip()


def first_words(text, count):
    """The first ``count`` space-separated words of ``text``."""
    return " ".join(text.split(" ", count)[:count])


def category_tokens(categories):
    """One token per category (inner spaces become ``_``), in order, without repeats or empties.

    ``categories`` may be a single string, a list, or a list of lists (category paths).
    """
    tokens = []
    for category in _flatten(categories):
        token = clean_text(category).replace(" ", "_")
        if token and token not in tokens:
            tokens.append(token)
    return tokens


def _flatten(value):
    if isinstance(value, (list, tuple)):
        for part in value:
            yield from _flatten(part)
    else:
        yield value


@dataclass(frozen=True)
class ItemRecord:
    """The ``.item`` fields of one item; ``image_source`` is a URL or a local file path, or ``""``."""

    title: str = ""
    categories: tuple = ()
    description: str = ""
    image_source: str = ""


class ItemCatalog:
    """Collects the metadata of the wanted items (those kept after filtering); other records are only counted.

    Keeping only wanted items bounds memory by the output, not by the metadata dump.
    """

    def __init__(self, wanted_item_ids, description_words):
        self.wanted = wanted_item_ids
        self.description_words = description_words
        self.items = {}
        self.unused_records = 0
        self.repeated_records = 0
        self.titles_only_markup = set()  # ids of items whose title has no text once its HTML markup is removed

    def wants(self, item_id):
        """Whether a metadata record for ``item_id`` should be converted (the first one of a kept item)."""
        if item_id not in self.wanted:
            self.unused_records += 1
            return False
        if item_id in self.items:
            self.repeated_records += 1
            return False
        return True

    def keep_only(self, item_ids):
        """Keep the metadata of ``item_ids`` only (read before filtering); the others count as not kept."""
        self.wanted = set(item_ids)
        kept = {item_id: item for item_id, item in self.items.items() if item_id in self.wanted}
        self.unused_records += len(self.items) - len(kept)
        self.items = kept
        self.titles_only_markup &= self.wanted

    def add(self, item_id, title=None, categories=(), description=None, image_source=""):
        """Store an item's metadata, cleaned and with the description cut to ``description_words`` words.

        A title with nothing left once its markup is removed is stored empty, like a missing title, and counted.
        """
        cleaned_title = clean_text(title)
        if not cleaned_title and isinstance(title, str) and title.strip():
            self.titles_only_markup.add(item_id)
        self.items[item_id] = ItemRecord(
            title=cleaned_title,
            categories=tuple(category_tokens(categories)),
            description=first_words(clean_text(description), self.description_words),
            image_source=image_source or "",
        )
