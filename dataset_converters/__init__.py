"""Converters from raw Amazon / MovieLens / MicroLens dumps to RecBole atomic files (``recbole-mllmr1 convert``).

One module per job: ``io`` (streaming plain/gzip lines), ``records`` (parsing and field checks),
``cut_lines`` (a delimited file cut inside its last line), ``bad_lines`` / ``errors`` (what happens
to bad input), one module per source format
(``amazon2023``, ``amazon2018``, ``movielens``, ``microlens``), ``interactions`` and ``filters``
(compact storage, k-core and friends), ``items`` (item text), ``images`` (downloader),
``atomic`` (writing the dataset), ``report`` (manifest and summary), ``pipeline`` and ``cli``.
"""
