"""What the Amazon review dumps (2014, 2018, 2023) share: a reviews file and a metadata file, both JSON lines.

Each release module supplies how to parse its two line kinds and which metadata fields become
the item's title, categories, description and image.
"""
from pathlib import Path

from .io import SourceFile


class AmazonSource:
    """The reviews and metadata files of one Amazon category; subclasses name the release's fields."""

    format_name = None

    def __init__(self, reviews, meta):
        self.reviews = SourceFile("reviews", Path(reviews))
        self.meta = SourceFile("meta", Path(meta))
        self.sources = [self.reviews, self.meta]

    def settings(self):
        """Format-specific settings recorded in the manifest."""
        return {}

    @staticmethod
    def parse_review(text):
        raise NotImplementedError

    @staticmethod
    def parse_metadata(text):
        raise NotImplementedError

    @staticmethod
    def item_fields(record):
        """``title``, ``categories``, ``description`` and ``image_source`` of one metadata record."""
        raise NotImplementedError

    def read_interactions(self, collector, reader):
        """Stream the reviews into ``collector``."""
        for interaction in reader.records(self.reviews, self.parse_review):
            collector.add(*interaction)

    def read_items(self, catalog, reader):
        """Stream the metadata, keeping the items ``catalog`` wants."""
        for item_id, record in reader.records(self.meta, self.parse_metadata):
            if catalog.wants(item_id):
                catalog.add(item_id, **self.item_fields(record))
