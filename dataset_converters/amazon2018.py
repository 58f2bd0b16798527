"""Amazon Review Data 2018 (Ni et al.), also reading the 2014 (McAuley et al.) files; items keyed by ``asin``.

Review line (2018 and 2014): ``reviewerID``, ``asin``, ``overall``, ``unixReviewTime`` (seconds),
``reviewTime``, ``reviewText``, ``summary``, ``verified``...
Metadata line, 2018: JSON with ``asin``, ``title``, ``brand``, ``category`` (list), ``description``
(list), ``feature``, and image URL lists: ``imageURL`` and ``imageURLHighRes``, or in some categories
(e.g. Gift Cards) ``image``.
Metadata line, 2014: a Python dict literal with ``asin``, ``title``, ``imUrl``, ``categories``
(list of category paths), ``salesRank``, ``related``.
"""
from .amazon import AmazonSource
from .records import number_field, parse_json_object, token_field

FORMAT = "amazon2018"
# Where the releases keep the item's pictures, best first: the 2018 full-size list, the 2018 small-size
# list (``._SS40_`` thumbnails), the 2018 list that some categories (e.g. Gift Cards) have instead of
# both, and the 2014 single URL.
IMAGE_FIELDS = ("imageURLHighRes", "imageURL", "image", "imUrl")


def parse_review(text):
    """``(user_id, item_id, rating, timestamp in seconds)`` from one review line."""
    review = parse_json_object(text, allow_python_literal=True)
    return (
        token_field(review, "reviewerID"),
        token_field(review, "asin"),
        number_field(review, "overall"),
        number_field(review, "unixReviewTime"),
    )


def parse_metadata(text):
    """``(item_id, record)`` from one metadata line, JSON (2018) or Python dict literal (2014)."""
    record = parse_json_object(text, allow_python_literal=True)
    return token_field(record, "asin"), record


def image_url(record):
    """The item's first image URL, from the first image field of :data:`IMAGE_FIELDS` that has one, or ``""``."""
    for field in IMAGE_FIELDS:
        url = first_url(record.get(field))
        if url:
            return url
    return ""


def first_url(value):
    """``value`` when it is a non-empty string, the first non-empty string of a list, else ``""``."""
    if isinstance(value, list):
        return next((url for url in value if isinstance(url, str) and url), "")
    return value if isinstance(value, str) else ""


class Amazon2018Source(AmazonSource):
    """The reviews and metadata files of one Amazon 2018 (or 2014) category."""

    format_name = FORMAT
    parse_review = staticmethod(parse_review)
    parse_metadata = staticmethod(parse_metadata)

    @staticmethod
    def item_fields(record):
        return dict(
            title=record.get("title"),
            categories=record.get("category") or record.get("categories"),
            description=record.get("description"),
            image_source=image_url(record),
        )
