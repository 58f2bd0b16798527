"""MicroLens (Westlake University), e.g. MicroLens-100k: short-video interactions with titles and covers.

* ``MicroLens-100k_pairs.csv``: header ``user,item,timestamp``, timestamps in milliseconds.
* ``MicroLens-100k_title_en.csv``: ``item,title`` lines without a header; titles are not quoted
  and may contain commas, so everything after the first comma is the title.
* a covers folder with one ``<item>.jpg`` per video.

The pairs are implicit feedback (views), written with rating 1.
"""
from pathlib import Path

from .cut_lines import CutTimestampCheck
from .errors import MALFORMED_LINE, ConversionError, RecordError
from .images import index_image_folder
from .io import SourceFile
from .records import as_token, number_field, parse_csv_line, token_field

FORMAT = "microlens"
PAIR_COLUMNS = ("user", "item", "timestamp")
IMPLICIT_RATING = 1.0
MILLISECONDS_PER_SECOND = 1000
# Some redistributions add a header line to the titles file.
TITLE_HEADER_IDS = frozenset({"item", "item_id", "itemid", "video_id", "videoid", "id"})


def parse_pair_row(row):
    """``(user_id, item_id, rating, timestamp in seconds)`` from a row of the pairs file."""
    return (
        token_field(row, "user"),
        token_field(row, "item"),
        IMPLICIT_RATING,
        number_field(row, "timestamp") / MILLISECONDS_PER_SECOND,
    )


def parse_title_line(text):
    """``(item_id, title)`` from a line of the titles file."""
    values = parse_csv_line(text)
    if len(values) < 2:
        raise RecordError(MALFORMED_LINE, "expected 'item,title'")
    return as_token(values[0], "item"), ",".join(values[1:])


class MicroLensSource:
    """A MicroLens pairs file, its titles file and (optionally) its covers folder."""

    format_name = FORMAT

    def __init__(self, pairs, titles, covers=None):
        self.pairs = SourceFile("pairs", Path(pairs))
        self.titles = SourceFile("titles", Path(titles))
        self.covers = Path(covers) if covers else None
        if self.covers is not None and not self.covers.is_dir():
            raise ConversionError(f"--covers {self.covers} is not a folder of cover images (<item>.jpg)")
        self.sources = [self.pairs, self.titles]

    def settings(self):
        """Format-specific settings recorded in the manifest."""
        return {"covers": str(self.covers) if self.covers else None}

    def read_interactions(self, collector, reader):
        """Stream the pairs into ``collector``."""
        pairs = reader.csv_records(self.pairs, PAIR_COLUMNS, parse_pair_row, last_line_check=CutTimestampCheck(collector))
        for interaction in pairs:
            collector.add(*interaction)

    def read_items(self, catalog, reader):
        """Read the titles of the items ``catalog`` wants, with their covers."""
        covers = index_image_folder(self.covers) if self.covers is not None else {}
        for index, (item_id, title) in enumerate(reader.records(self.titles, parse_title_line)):
            if index == 0 and item_id.lower() in TITLE_HEADER_IDS:
                continue
            if catalog.wants(item_id):
                cover = covers.get(item_id)
                catalog.add(item_id, title=title, image_source=str(cover) if cover else "")
