"""Colour and light words from the pixels alone: dominant colours from a fixed palette, brightness, contrast.

Pixels are named by hue, saturation and value rules rather than by nearest RGB swatch,
because what a person calls "red" or "brown" follows hue and lightness far more than RGB
distance. Every threshold is fixed, so the same image always gives the same words.
"""

import numpy as np

# Hue bands in degrees [start, end); red wraps around 0.
_HUE_BANDS = (
    ("red", 0, 15),
    ("orange", 15, 40),
    ("yellow", 40, 70),
    ("green", 70, 165),
    ("teal", 165, 195),
    ("blue", 195, 255),
    ("purple", 255, 290),
    ("pink", 290, 340),
    ("red", 340, 361),
)
_STATS_SIDE = 64  # statistics on a small copy: the words do not change, the cost does
_MIN_SHARE = 0.12  # a colour must cover this much of the image to be named, after the first
_MAX_COLOURS = 3


def _pixel_names(rgb):
    """One palette name per pixel, from an ``[N, 3]`` float array in [0, 1]."""
    maximum, minimum = rgb.max(axis=1), rgb.min(axis=1)
    value, chroma = maximum, maximum - minimum
    saturation = np.where(maximum > 0, chroma / np.maximum(maximum, 1e-9), 0.0)
    red, green, blue = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    safe_chroma = np.maximum(chroma, 1e-9)
    hue = (
        np.select(
            [maximum == red, maximum == green],
            [((green - blue) / safe_chroma) % 6, (blue - red) / safe_chroma + 2],
            (red - green) / safe_chroma + 4,
        )
        * 60.0
    )

    names = np.empty(len(rgb), dtype="<U6")
    for name, start, end in _HUE_BANDS:
        names[(hue >= start) & (hue < end)] = name
    # Dark oranges and reds read as brown; pale reds read as pink.
    names[np.isin(names, ("orange", "red", "yellow")) & (value < 0.55) & (saturation > 0.35)] = "brown"
    names[(names == "red") & (saturation < 0.5) & (value > 0.75)] = "pink"
    achromatic = (saturation < 0.2) | (chroma < 0.08)
    names[achromatic] = np.where(value[achromatic] > 0.85, "white", "grey")
    names[value < 0.18] = "black"
    return names, saturation


def colour_profile(image):
    """``(dominant colour names, most first; light words)`` for an RGB PIL image."""
    small = image.copy()
    small.thumbnail((_STATS_SIDE, _STATS_SIDE))
    rgb = np.asarray(small, dtype=np.float64).reshape(-1, 3) / 255.0
    names, saturation = _pixel_names(rgb)

    labels, counts = np.unique(names, return_counts=True)
    order = sorted(zip(counts, labels, strict=True), key=lambda pair: (-pair[0], pair[1]))
    dominant = [str(label) for count, label in order if count / len(names) >= _MIN_SHARE][:_MAX_COLOURS]
    dominant = dominant or [str(order[0][1])]

    luminance = rgb @ np.array([0.299, 0.587, 0.114])
    brightness, contrast = luminance.mean(), luminance.std()
    light = []
    if brightness < 0.3:
        light.append("dark")
    elif brightness > 0.65:
        light.append("bright")
    if contrast > 0.27:
        light.append("high-contrast")
    elif contrast < 0.1:
        light.append("low-contrast")
    chromatic = ~np.isin(names, ("black", "grey", "white"))
    if chromatic.mean() < 0.05:
        light.append("monochrome")
    elif saturation[chromatic].mean() > 0.6:
        light.append("vivid")
    elif saturation[chromatic].mean() < 0.3:
        light.append("muted")
    return dominant, light


def _join(words):
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def describe_colours(image):
    """E.g. ``"Dark, high-contrast image, mostly black, red and orange."``"""
    dominant, light = colour_profile(image)
    lead = ", ".join(light).capitalize() + " image" if light else "Image"
    return f"{lead}, mostly {_join(dominant)}."
