"""MovieLens (GroupLens) releases, recognised by the files in the source folder.

* ml-100k: ``u.data`` (tab-separated user, item, rating, timestamp) and ``u.item``
  (``|``-separated, latin-1: id, title, release date, video release date, IMDb URL, 19 genre flags).
* ml-1m, ml-10m: ``ratings.dat`` (``UserID::MovieID::Rating::Timestamp``) and ``movies.dat``
  (``MovieID::Title::Genres`` with ``|``-separated genres).
* ml-20m, ml-25m, ml-32m, ml-latest(-small): ``ratings.csv`` (``userId,movieId,rating,timestamp``),
  ``movies.csv`` (``movieId,title,genres``) and ``links.csv`` (``movieId,imdbId,tmdbId``).

MovieLens has no images; posters come from a folder of files named by movieId, imdbId or tmdbId,
or from a URL template such as ``https://example.org/{tmdbId}.jpg``.
"""
import string
from pathlib import Path

from .cut_lines import CutTimestampCheck
from .errors import MALFORMED_LINE, ConversionError, RecordError
from .images import index_image_folder
from .io import SourceFile
from .records import as_number, as_token, require_field, split_fields, token_field

FORMAT = "movielens"
POSTER_KEYS = ("movieId", "imdbId", "tmdbId")
# u.genre of ml-100k: the order of the genre flags in u.item.
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
U_DATA_FIELDS = ("user id", "item id", "rating", "timestamp")
U_ITEM_FIELDS = ("movie id", "movie title", "release date", "video release date", "IMDb URL") + ML100K_GENRES
DAT_RATING_FIELDS = ("UserID", "MovieID", "Rating", "Timestamp")
CSV_RATING_COLUMNS = ("userId", "movieId", "rating", "timestamp")
CSV_MOVIE_COLUMNS = ("movieId", "title", "genres")
CSV_LINK_COLUMNS = ("movieId", "imdbId", "tmdbId")
NO_GENRES = "(no genres listed)"

# file names of each layout: (ratings, movies)
LAYOUTS = {
    "ml-100k": ("u.data", "u.item"),
    "dat": ("ratings.dat", "movies.dat"),
    "csv": ("ratings.csv", "movies.csv"),
}


def detect_layout(src):
    """Which MovieLens release layout ``src`` holds: ``ml-100k``, ``dat`` or ``csv``."""
    for layout, (ratings, _) in LAYOUTS.items():
        if (src / ratings).is_file():
            return layout
    expected = " or ".join(ratings for ratings, _ in LAYOUTS.values())
    raise ConversionError(f"{src} is not an unpacked MovieLens folder: it has no {expected}")


def _rating(user_id, movie_id, rating, timestamp, names):
    return (
        as_token(user_id, names[0]),
        as_token(movie_id, names[1]),
        as_number(rating, names[2]),
        as_number(timestamp, names[3]),
    )


def parse_u_data_line(text):
    """``(user_id, item_id, rating, timestamp)`` from a line of ml-100k ``u.data``."""
    return _rating(*split_fields(text, "\t", U_DATA_FIELDS), U_DATA_FIELDS)


def parse_dat_rating_line(text):
    """``(user_id, item_id, rating, timestamp)`` from a line of ``ratings.dat``."""
    return _rating(*split_fields(text, "::", DAT_RATING_FIELDS), DAT_RATING_FIELDS)


def parse_csv_rating_row(row):
    """``(user_id, item_id, rating, timestamp)`` from a row of ``ratings.csv``."""
    return _rating(*(require_field(row, column) for column in CSV_RATING_COLUMNS), CSV_RATING_COLUMNS)


def parse_u_item_line(text):
    """``(movie_id, title, genres)`` from a line of ml-100k ``u.item``."""
    values = split_fields(text, "|", U_ITEM_FIELDS)
    flags = values[len(U_ITEM_FIELDS) - len(ML100K_GENRES):]
    genres = [genre for genre, flag in zip(ML100K_GENRES, flags) if flag.strip() == "1"]
    return as_token(values[0], "movie id"), values[1], genres


def parse_dat_movie_line(text):
    """``(movie_id, title, genres)`` from a line of ``movies.dat`` (a title may itself contain ``::``)."""
    values = text.split("::")
    if len(values) < 3:
        raise RecordError(MALFORMED_LINE, f"expected 3 '::'-separated fields (MovieID, Title, Genres), found {len(values)}")
    return as_token(values[0], "MovieID"), "::".join(values[1:-1]), _genres(values[-1])


def parse_csv_movie_row(row):
    """``(movie_id, title, genres)`` from a row of ``movies.csv``."""
    return token_field(row, "movieId"), row["title"], _genres(row["genres"])


def parse_csv_link_row(row):
    """``(movie_id, {key: id})`` from a row of ``links.csv``; a missing tmdbId is left out."""
    keys = {key: row[key].strip() for key in ("imdbId", "tmdbId") if row[key].strip()}
    return token_field(row, "movieId"), keys


def _genres(text):
    return [genre for genre in text.split("|") if genre.strip() and genre.strip() != NO_GENRES]


class MovieLensSource:
    """A MovieLens folder, with optional posters from a folder and/or a URL template."""

    format_name = FORMAT

    def __init__(self, src, posters=None, poster_key="movieId", poster_url_template=None):
        self.src = Path(src)
        if not self.src.is_dir():
            raise ConversionError(f"--src {self.src} is not a folder; pass the unpacked MovieLens folder (e.g. ml-1m/)")
        self.layout = detect_layout(self.src)
        ratings_name, movies_name = LAYOUTS[self.layout]
        self.ratings = SourceFile("ratings", self.src / ratings_name)
        self.movies = SourceFile("movies", self.src / movies_name)
        self.links = SourceFile("links", self.src / "links.csv")
        self.posters = Path(posters) if posters else None
        self.poster_key = poster_key
        self.poster_url_template = poster_url_template
        self._check_poster_options()
        self.sources = [self.ratings, self.movies] + ([self.links] if self._needs_links() else [])

    def _check_poster_options(self):
        if self.poster_key not in POSTER_KEYS:
            raise ConversionError(f"--poster-key must be one of {', '.join(POSTER_KEYS)}, not {self.poster_key!r}")
        if self.posters is not None and not self.posters.is_dir():
            raise ConversionError(f"--posters {self.posters} is not a folder of poster images")
        if self.poster_url_template is not None:
            names = self._template_keys()
            unknown = names - set(POSTER_KEYS)
            if unknown or not names:
                raise ConversionError(
                    f"--poster-url-template {self.poster_url_template!r} must use only the placeholders "
                    f"{{movieId}}, {{imdbId}}, {{tmdbId}} (found {sorted(names) or 'none'})"
                )
        if self._needs_links() and not self.links.path.is_file():
            raise ConversionError(
                f"posters keyed by imdbId or tmdbId need {self.links.path} (shipped with ml-20m and later); "
                "use --poster-key movieId for this release"
            )

    def _template_keys(self):
        if self.poster_url_template is None:
            return set()
        return {name for _, name, _, _ in string.Formatter().parse(self.poster_url_template) if name is not None}

    def _needs_links(self):
        keys = self._template_keys() | ({self.poster_key} if self.posters is not None else set())
        return bool(keys - {"movieId"})

    def settings(self):
        """Format-specific settings recorded in the manifest."""
        return {
            "layout": self.layout,
            "posters": str(self.posters) if self.posters else None,
            "poster_key": self.poster_key,
            "poster_url_template": self.poster_url_template,
        }

    def read_interactions(self, collector, reader):
        """Stream the ratings into ``collector``."""
        cut_check = CutTimestampCheck(collector)
        if self.layout == "ml-100k":
            ratings = reader.records(self.ratings, parse_u_data_line, last_line_check=cut_check)
        elif self.layout == "dat":
            ratings = reader.records(self.ratings, parse_dat_rating_line, last_line_check=cut_check)
        else:
            ratings = reader.csv_records(self.ratings, CSV_RATING_COLUMNS, parse_csv_rating_row, last_line_check=cut_check)
        for interaction in ratings:
            collector.add(*interaction)

    def read_items(self, catalog, reader):
        """Read the movies ``catalog`` wants, with their poster (a local file or a URL) when there is one."""
        if self.layout == "ml-100k":
            movies = reader.records(self.movies, parse_u_item_line, encoding="latin-1")
        elif self.layout == "dat":
            # ml-1m writes titles in latin-1, later releases in UTF-8.
            movies = reader.records(self.movies, parse_dat_movie_line, fallback_encoding="latin-1")
        else:
            movies = reader.csv_records(self.movies, CSV_MOVIE_COLUMNS, parse_csv_movie_row)
        poster_for = self._poster_finder(catalog.wanted, reader)
        for movie_id, title, genres in movies:
            if catalog.wants(movie_id):
                catalog.add(movie_id, title=title, categories=genres, image_source=poster_for(movie_id))

    def _poster_finder(self, wanted, reader):
        links = {}
        if self._needs_links():
            for movie_id, keys in reader.csv_records(self.links, CSV_LINK_COLUMNS, parse_csv_link_row):
                if movie_id in wanted:
                    links[movie_id] = keys
        poster_files = index_image_folder(self.posters) if self.posters is not None else {}

        def poster_for(movie_id):
            keys = {"movieId": movie_id, **links.get(movie_id, {})}
            key = keys.get(self.poster_key)
            # IMDb ids appear both as '0114709' (links.csv) and 'tt0114709' (IMDb itself).
            names = (key, f"tt{key}") if self.poster_key == "imdbId" else (key,)
            poster = next((poster_files[name] for name in names if key and name in poster_files), None)
            if poster is not None:
                return str(poster)
            if self.poster_url_template is not None and self._template_keys() <= keys.keys():
                return self.poster_url_template.format_map(keys)
            return ""

        return poster_for
