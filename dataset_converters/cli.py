"""``recbole-mllmr1 convert <format>``: raw Amazon / MovieLens / MicroLens dumps to RecBole atomic files."""
import sys
from pathlib import Path

from .amazon2018 import Amazon2018Source
from .amazon2023 import Amazon2023Source
from .errors import ConversionError
from .images import ImageSettings
from .microlens import MicroLensSource
from .movielens import POSTER_KEYS, MovieLensSource
from .pipeline import REQUIRE_META_CHOICES, ConvertOptions, convert
from .report import format_summary

EPILOG = (
    "Writes <out>/<name>.inter, <name>.item, <name>.yaml and manifest.json once the conversion is complete; "
    "images go to <out>/images/."
)


def add_arguments(parser):
    """Add the ``convert`` command's sub-commands (one per source format) to ``parser``."""
    formats = parser.add_subparsers(dest="source_format", required=True, metavar="format")

    amazon2023 = formats.add_parser(
        "amazon2023", help="Amazon Reviews 2023 (JSON lines, items keyed by parent_asin).", epilog=EPILOG
    )
    amazon2023.add_argument("--reviews", required=True, help="reviews file, e.g. Beauty.jsonl.gz (plain or gzip)")
    amazon2023.add_argument("--meta", required=True, help="item metadata file, e.g. meta_Beauty.jsonl.gz")

    amazon2018 = formats.add_parser(
        "amazon2018", help="Amazon 2018 review data (JSON lines); also reads the 2014 files.", epilog=EPILOG
    )
    amazon2018.add_argument("--reviews", required=True, help="reviews file, e.g. Beauty_5.json.gz (plain or gzip)")
    amazon2018.add_argument(
        "--meta", required=True, help="metadata file, e.g. meta_Beauty.json.gz (2018 JSON or 2014 dict literals)"
    )

    movielens = formats.add_parser(
        "movielens", help="MovieLens ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, ml-latest.", epilog=EPILOG
    )
    movielens.add_argument("--src", required=True, help="the unpacked MovieLens folder, e.g. ml-1m/")
    movielens.add_argument("--posters", help="folder of poster images named <key>.jpg (see --poster-key)")
    movielens.add_argument(
        "--poster-key", choices=POSTER_KEYS, default="movieId",
        help="which id names the poster files (imdbId / tmdbId are looked up in links.csv; default: movieId)",
    )
    movielens.add_argument(
        "--poster-url-template",
        help="poster URL for movies without a poster file, e.g. 'https://example.org/{tmdbId}.jpg' "
        "(placeholders: {movieId}, {imdbId}, {tmdbId})",
    )

    microlens = formats.add_parser("microlens", help="MicroLens (e.g. MicroLens-100k) pairs, titles and covers.", epilog=EPILOG)
    microlens.add_argument(
        "--pairs", required=True, help="interaction pairs CSV (user,item,timestamp), e.g. MicroLens-100k_pairs.csv"
    )
    microlens.add_argument("--titles", required=True, help="titles CSV (item,title), e.g. MicroLens-100k_title_en.csv")
    microlens.add_argument("--covers", help="folder of cover images named <item>.jpg")

    for format_parser in (amazon2023, amazon2018, movielens, microlens):
        _add_common_arguments(format_parser)


def _add_common_arguments(parser):
    parser.add_argument("--out", required=True, type=Path, help="output dataset folder, e.g. dataset/amazon-beauty")
    parser.add_argument("--name", help="dataset name, used for the file names (default: the --out folder's name)")
    parser.add_argument("--kcore", type=int, default=0, metavar="N",
                        help="keep only users and items with at least N interactions, repeated until stable (default: off)")
    parser.add_argument("--min-rating", type=float, metavar="X", help="drop interactions rated below X")
    parser.add_argument("--keep-duplicates", action="store_true",
                        help="keep repeated (user, item) interactions (default: keep only the earliest)")
    parser.add_argument("--skip-bad-lines", action="store_true",
                        help="skip malformed lines, lines with missing fields or bad bytes, and empty files, "
                        "counting them in manifest.json (default: stop at the first one)")
    parser.add_argument("--require-meta", choices=REQUIRE_META_CHOICES,
                        help="items that the metadata file lacks (by default kept, without a title, with a warning): "
                        "'drop' drops their interactions (before --kcore), 'fail' stops the conversion")
    parser.add_argument("--description-words", type=int, default=50, metavar="N",
                        help="keep the first N words of item descriptions (default: 50)")
    images = parser.add_argument_group("images")
    images.add_argument("--download-images", action="store_true",
                        help="download image URLs into <out>/images (default: write the URLs into the .item file)")
    images.add_argument("--image-size", type=int, metavar="PIXELS",
                        help="shrink stored images so that their longer side is at most PIXELS")
    images.add_argument("--image-workers", type=int, default=8, metavar="N", help="parallel downloads (default: 8)")
    images.add_argument("--image-timeout", type=float, default=20.0, metavar="SECONDS",
                        help="timeout of one download attempt (default: 20)")
    images.add_argument("--image-retries", type=int, default=3, metavar="N",
                        help="retries of a download after a 5xx, a timeout or a connection error (default: 3)")
    parser.add_argument("--no-progress", action="store_true", help="do not show progress bars")


def build_source(args):
    """The source object of the chosen format, from the parsed arguments."""
    if args.source_format == "amazon2023":
        return Amazon2023Source(args.reviews, args.meta)
    if args.source_format == "amazon2018":
        return Amazon2018Source(args.reviews, args.meta)
    if args.source_format == "movielens":
        return MovieLensSource(args.src, args.posters, args.poster_key, args.poster_url_template)
    if args.min_rating is not None:
        raise ConversionError("--min-rating does not apply to MicroLens: its pairs are views without ratings")
    return MicroLensSource(args.pairs, args.titles, args.covers)


def build_options(args):
    """:class:`ConvertOptions` from the parsed arguments, checking their ranges."""
    for flag, value, minimum in (
        ("--kcore", args.kcore, 0),
        ("--description-words", args.description_words, 0),
        ("--image-size", args.image_size, 1),
        ("--image-workers", args.image_workers, 1),
        ("--image-retries", args.image_retries, 0),
    ):
        if value is not None and value < minimum:
            raise ConversionError(f"{flag} must be at least {minimum}, not {value}")
    show_progress = not args.no_progress
    return ConvertOptions(
        out=args.out,
        name=args.name or args.out.resolve().name,
        kcore=args.kcore,
        min_rating=args.min_rating,
        keep_duplicates=args.keep_duplicates,
        skip_bad_lines=args.skip_bad_lines,
        download_images=args.download_images,
        description_words=args.description_words,
        require_meta=args.require_meta,
        images=ImageSettings(
            workers=args.image_workers,
            timeout=args.image_timeout,
            retries=args.image_retries,
            max_side=args.image_size,
            show_progress=show_progress,
        ),
        show_progress=show_progress,
    )


def run(args):
    """Run the conversion chosen by ``args``; returns the process exit code (0 on success, 1 on an input error)."""
    try:
        manifest = convert(build_source(args), build_options(args))
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_summary(manifest, args.out))
    for warning in manifest["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
