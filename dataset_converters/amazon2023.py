"""Amazon Reviews 2023 (McAuley Lab): review and item-metadata JSON lines, items keyed by ``parent_asin``.

Review line: ``user_id``, ``parent_asin``, ``asin``, ``rating``, ``timestamp`` (milliseconds),
``title``, ``text``, ``helpful_vote``, ``verified_purchase``, ``images``.
Metadata line: ``parent_asin``, ``title``, ``main_category``, ``categories``, ``features``,
``description`` (list of str), ``price``, ``store``, ``details``, ``images`` (list of
``{thumb, large, hi_res, variant}``).
"""
from .amazon import AmazonSource
from .records import number_field, parse_json_object, token_field

FORMAT = "amazon2023"
MILLISECONDS_PER_SECOND = 1000
# 'large' is about 500 px: enough for an image description, a fraction of 'hi_res' in bytes.
IMAGE_SIZE_PREFERENCE = ("large", "hi_res", "thumb")


def parse_review(text):
    """``(user_id, item_id, rating, timestamp in seconds)`` from one review line."""
    review = parse_json_object(text)
    return (
        token_field(review, "user_id"),
        token_field(review, "parent_asin"),
        number_field(review, "rating"),
        number_field(review, "timestamp") / MILLISECONDS_PER_SECOND,
    )


def parse_metadata(text):
    """``(item_id, record)`` from one metadata line."""
    record = parse_json_object(text)
    return token_field(record, "parent_asin"), record


def main_image_url(images):
    """The URL of the main product image (variant ``MAIN``, else the first), or ``""``."""
    candidates = [image for image in images or () if isinstance(image, dict)]
    candidates.sort(key=lambda image: image.get("variant") != "MAIN")
    for image in candidates:
        for size in IMAGE_SIZE_PREFERENCE:
            if isinstance(image.get(size), str) and image[size]:
                return image[size]
    return ""


class Amazon2023Source(AmazonSource):
    """The reviews and metadata files of one Amazon Reviews 2023 category."""

    format_name = FORMAT
    parse_review = staticmethod(parse_review)
    parse_metadata = staticmethod(parse_metadata)

    @staticmethod
    def item_fields(record):
        return dict(
            title=record.get("title"),
            categories=record.get("categories") or [record.get("main_category")],
            description=record.get("description"),
            image_source=main_image_url(record.get("images")),
        )
