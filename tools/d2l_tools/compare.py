"""Compare a cell's stored outputs with a re-run's: exact structure, numbers within a tolerance.

Two runs of the same notebook on two machines print the same text and draw the same figures
except for floating-point noise: a different CPU, thread count or library build sums in
another order. Training amplifies that noise (SGD is chaotic), so its losses and accuracies
differ in the second or third decimal. This module tells that noise from a real change:

* **Text** (streams, ``text/plain``, ``text/html``, ...) is split into numbers and the text
  between them. The text must match exactly, except that a run of spaces may be longer or
  shorter (a column padded for "9" holds "10" with one space less); each number must lie
  within its tolerance. By
  default an integer must be equal (shapes, counts, epochs) and a decimal may differ by one
  unit of its last printed digit (a rounding flip). A cell may declare looser tolerances for
  numbers by label in ``metadata.d2l.compare.numbers``: ``{"loss": 0.03, "acc": 0.015}``
  applies 0.03 to every number whose label (the text just before it on its line, back to
  the previous number) contains ``loss``; the key ``"*"`` applies to every other number.
* **SVG** figures are parsed as XML after renaming their ids in document order (matplotlib
  derives ids from hashes of the path data, so noise renames them). Elements, attributes and
  text must match; numbers in attributes (coordinates) may differ by ``svg_atol`` points
  (default 0.01: invisible).
* **PNG/JPEG** images must have the same size, and at most ``max_changed`` of their pixels
  (default 0.1 %) may differ by more than ``pixel_threshold`` (default 0.1 of full scale).
  A cell may declare ``"png": {"max_changed": 0.05}`` when its picture follows numbers that
  are compared with a tolerance.

A cell that loosens a default says why in ``metadata.d2l.compare.reason`` (the structure
check enforces it). Every function returns a list of problems; empty means "same".
"""

import base64
import io
import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from d2l_tools.text import output_text

DEFAULT_SVG_ATOL = 0.01  # points; a hundredth of a point is far below anything visible
DEFAULT_PNG_MAX_CHANGED = 0.001
DEFAULT_PIXEL_THRESHOLD = 0.1
REL_TOL = 1e-9  # beyond the printed digits, a float's own rounding

# A number not glued to a word before it ("float32", "Dense_0" stay text); a unit after it
# ("12.5pt") or a full stop is fine: sign, digits, optional fraction and exponent.
NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?!\d|\.\d)")
# Keys of a cell output that never carry content worth comparing.
SKIPPED_KEYS = {
    "metadata",
    "traceback",
    "prompt_number",
    "execution_count",
    "output_type",
    "transient",
    "application/vnd.jupyter.widget-view+json",
}


class PolicyError(ValueError):
    """A cell's ``metadata.d2l.compare`` is malformed."""


@dataclass(frozen=True)
class Policy:
    """How closely a re-run must match; built from a cell's ``metadata.d2l.compare``."""

    numbers: dict = field(default_factory=dict)  # label substring (or "*") -> absolute tolerance
    svg_atol: float = DEFAULT_SVG_ATOL
    png_max_changed: float = DEFAULT_PNG_MAX_CHANGED
    pixel_threshold: float = DEFAULT_PIXEL_THRESHOLD
    reason: str = ""

    @property
    def loosened(self):
        return (
            bool(self.numbers)
            or self.svg_atol != DEFAULT_SVG_ATOL
            or self.png_max_changed != DEFAULT_PNG_MAX_CHANGED
            or self.pixel_threshold != DEFAULT_PIXEL_THRESHOLD
        )

    @classmethod
    def from_metadata(cls, metadata):
        """The policy of a cell, from its metadata dict (missing: the strict default)."""
        spec = ((metadata or {}).get("d2l") or {}).get("compare")
        if spec is None:
            return cls()
        if not isinstance(spec, dict):
            raise PolicyError(f"metadata.d2l.compare must be an object, not {spec!r}")
        known = {"numbers", "svg_atol", "png", "reason"}
        if set(spec) - known:
            raise PolicyError(f"metadata.d2l.compare: unknown key(s) {sorted(set(spec) - known)}; use {sorted(known)}")
        numbers = spec.get("numbers", {})
        if not isinstance(numbers, dict) or not all(_is_tolerance(v) for v in numbers.values()):
            raise PolicyError(f"metadata.d2l.compare.numbers must map labels to non-negative numbers: {numbers!r}")
        png = spec.get("png", {})
        if not isinstance(png, dict) or set(png) - {"max_changed", "pixel_threshold"}:
            raise PolicyError(f"metadata.d2l.compare.png takes max_changed and pixel_threshold: {png!r}")
        svg_atol = spec.get("svg_atol", DEFAULT_SVG_ATOL)
        for value in (svg_atol, *png.values()):
            if not _is_tolerance(value):
                raise PolicyError(f"metadata.d2l.compare: {value!r} is not a non-negative number")
        return cls(
            numbers={str(k).lower(): float(v) for k, v in numbers.items()},
            svg_atol=float(svg_atol),
            png_max_changed=float(png.get("max_changed", DEFAULT_PNG_MAX_CHANGED)),
            pixel_threshold=float(png.get("pixel_threshold", DEFAULT_PIXEL_THRESHOLD)),
            reason=str(spec.get("reason", "")).strip(),
        )


def _is_tolerance(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 and math.isfinite(value)


# ---------------------------------------------------------------------------------------------
# Text


def split_numbers(text):
    """``(texts, numbers)``: the text around the numbers (one more than numbers) and the numbers."""
    texts, numbers, start = [], [], 0
    for match in NUMBER.finditer(text):
        texts.append(text[start : match.start()])
        numbers.append(match.group())
        start = match.end()
    texts.append(text[start:])
    return texts, numbers


def last_digit_unit(token):
    """One unit of the last printed digit of a decimal token ("0.8469" -> 1e-4; "5.18e+21" -> 1e19)."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def is_integer_token(token):
    return "." not in token and "e" not in token.lower()


def _label(before):
    """The label of a number: the text before it on its line, back to the previous number."""
    return before.rsplit("\n", 1)[-1].strip(" \t:=,;()[]").lower()


def number_tolerance(token, label, policy):
    """The absolute tolerance for ``token`` printed after ``label`` under ``policy``."""
    for key, tolerance in policy.numbers.items():
        if key != "*" and key in label:
            return tolerance
    if "*" in policy.numbers:
        return policy.numbers["*"]
    return 0.0 if is_integer_token(token) else last_digit_unit(token)


def _context(texts, numbers, index, width=60):
    """The line around number ``index``, the number in brackets, for messages."""
    before = "".join(t + n for t, n in zip(texts[:index], numbers[:index])) + texts[index]
    after = "".join(t + n for t, n in zip(texts[index + 1 :], numbers[index + 1 :] + [""]))
    return f"{before.rsplit(chr(10), 1)[-1][-width:]}[{numbers[index]}]{after.split(chr(10), 1)[0][:width]}".strip()


_PADDING = re.compile(r"[ \t]+")


def _squeeze(texts):
    """Runs of spaces as one: a column padded for "9" holds "10" with one space less."""
    return [_PADDING.sub(" ", text) for text in texts]


def compare_text(stored, rerun, policy=Policy(), what="text"):
    """Problems between two texts under ``policy`` (empty list: the same up to tolerance)."""
    if stored == rerun:
        return []
    s_texts, s_numbers = split_numbers(stored)
    r_texts, r_numbers = split_numbers(rerun)
    if _squeeze(s_texts) != _squeeze(r_texts):
        return [f"{what}: the text differs beyond its numbers:\n{_first_text_difference(stored, rerun)}"]
    problems = []
    for index, (s_token, r_token) in enumerate(zip(s_numbers, r_numbers)):
        if s_token == r_token:
            continue
        label = _label(s_texts[index])
        tolerance = number_tolerance(s_token, label, policy)
        s_value, r_value = float(s_token), float(r_token)
        if s_value == r_value:
            continue  # "1.0" vs "1.00": the same number
        allowed = tolerance + REL_TOL * max(abs(s_value), abs(r_value))
        if not abs(s_value - r_value) <= allowed:  # also fails on nan
            problems.append(
                f"{what}: number {s_token} became {r_token} (difference {abs(s_value - r_value):.3g}, "
                f"tolerance {tolerance:.3g}{' for ' + repr(label) if label else ''}) in: "
                f"{_context(s_texts, s_numbers, index)}"
            )
    return problems


def _first_text_difference(stored, rerun, context=3):
    s_lines, r_lines = stored.splitlines(), rerun.splitlines()
    for i, (s, r) in enumerate(zip(s_lines, r_lines)):
        if _squeeze(split_numbers(s)[0]) != _squeeze(split_numbers(r)[0]):
            return f"  line {i + 1} stored: {s[:200]!r}\n  line {i + 1} re-run: {r[:200]!r}"
    longer = "stored" if len(s_lines) > len(r_lines) else "re-run"
    i = min(len(s_lines), len(r_lines))
    extra = (s_lines if longer == "stored" else r_lines)[i : i + context]
    return f"  the {longer} output has {abs(len(s_lines) - len(r_lines))} more line(s), from line {i + 1}: {extra!r}"


# ---------------------------------------------------------------------------------------------
# SVG

_ID_REF = re.compile(r"#([^\s)\"']+)")


def _parse_svg(text):
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    return ET.fromstring(text.encode("utf-8") if isinstance(text, str) else text, parser=parser)


def _canonical_ids(root):
    """Rename every id in document order (id0, id1, ...) and every reference to it.

    Returns ``{element: original id}`` so that messages can name elements as the file does.
    """
    names, original = {}, {}
    for element in root.iter():
        if "id" in element.attrib:
            original[element] = element.attrib["id"]
            names.setdefault(element.attrib["id"], f"id{len(names)}")

    def rename(value):
        return _ID_REF.sub(lambda m: "#" + names.get(m.group(1), m.group(1)), value)

    for element in root.iter():
        for key, value in element.attrib.items():
            element.attrib[key] = names.get(value, value) if key == "id" else rename(value)
    return original


def _element_name(element, original):
    tag = element.tag if isinstance(element.tag, str) else "comment"
    tag = tag.rsplit("}", 1)[-1]
    ident = original.get(element)
    return f"{tag}[{ident}]" if ident else tag


def compare_svg(stored, rerun, policy=Policy(), what="image/svg+xml"):
    """Problems between two SVG documents: structure exact, coordinates within ``policy.svg_atol``."""
    if stored == rerun:
        return []
    try:
        s_root, r_root = _parse_svg(stored), _parse_svg(rerun)
    except ET.ParseError as err:
        return [f"{what}: not well-formed SVG ({err}); cannot compare"]
    s_ids, r_ids = _canonical_ids(s_root), _canonical_ids(r_root)
    coordinates = Policy(numbers={"*": policy.svg_atol})
    problems = []

    def walk(s, r, path):
        if problems:
            return
        if s.tag != r.tag:
            problems.append(
                f"{what}: at {path}: element <{_element_name(s, s_ids)}> became <{_element_name(r, r_ids)}>"
            )
            return
        if set(s.attrib) != set(r.attrib):
            problems.append(f"{what}: at {path}: attributes {sorted(s.attrib)} became {sorted(r.attrib)}")
            return
        for key in s.attrib:
            found = compare_text(s.attrib[key], r.attrib[key], coordinates, what=f"{what}: at {path} @{key}")
            if found:
                problems.extend(found[:1])
                return
        # Comments carry the text matplotlib drew as glyphs (tick labels, titles): strict.
        text_policy = policy if s.tag is ET.Comment else coordinates
        for part in ("text", "tail"):
            found = compare_text(
                (getattr(s, part) or "").strip(),
                (getattr(r, part) or "").strip(),
                text_policy,
                what=f"{what}: at {path} ({'text' if s.tag is ET.Comment else part})",
            )
            if found:
                problems.extend(found[:1])
                return
        s_children, r_children = list(s), list(r)
        if len(s_children) != len(r_children):
            problems.append(
                f"{what}: at {path}: {len(s_children)} child element(s) became {len(r_children)} "
                f"(stored {[_element_name(c, s_ids) for c in s_children][:8]}, "
                f"re-run {[_element_name(c, r_ids) for c in r_children][:8]})"
            )
            return
        for s_child, r_child in zip(s_children, r_children):
            walk(s_child, r_child, f"{path}/{_element_name(s_child, s_ids)}")

    walk(s_root, r_root, _element_name(s_root, s_ids))
    return problems


# ---------------------------------------------------------------------------------------------
# Raster images


def _decode_image(data):
    import numpy as np
    from PIL import Image

    raw = base64.b64decode(data) if isinstance(data, str) else data
    with Image.open(io.BytesIO(raw)) as image:
        return np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0


def compare_raster(stored, rerun, policy=Policy(), what="image/png"):
    """Problems between two base64 PNG/JPEG images: same size, few pixels changed."""
    if stored == rerun:
        return []
    try:
        s_pixels, r_pixels = _decode_image(stored), _decode_image(rerun)
    except Exception as err:  # PIL raises many kinds for bad data
        return [f"{what}: cannot decode the image ({type(err).__name__}: {err})"]
    if s_pixels.shape != r_pixels.shape:
        return [
            f"{what}: size {s_pixels.shape[1]}x{s_pixels.shape[0]} px became {r_pixels.shape[1]}x{r_pixels.shape[0]} px"
        ]
    changed = float((abs(s_pixels - r_pixels).max(axis=-1) > policy.pixel_threshold).mean())
    if changed > policy.png_max_changed:
        return [
            f"{what}: {changed:.2%} of the pixels changed (allowed {policy.png_max_changed:.2%}, "
            f"a pixel counts when a channel moves by more than {policy.pixel_threshold:.2f})"
        ]
    return []


# ---------------------------------------------------------------------------------------------
# Whole cells

COMPARERS = {"image/svg+xml": compare_svg, "image/png": compare_raster, "image/jpeg": compare_raster}


def output_items(outputs, sanitize=lambda text: text, images=True):
    """``{key: [value, ...]}`` of a cell's outputs, keyed by stream name or MIME type, in order.

    Like nbval's view: the relative order of different keys does not matter, the order of
    values under one key does. Consecutive chunks of one stream are joined first.
    """
    items = {}
    previous_stream = None
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            text = sanitize(output_text(out.get("text", "")))
            values = items.setdefault(out.get("name", "stdout"), [])
            if previous_stream == out.get("name") and values:
                values[-1] += text
            else:
                values.append(text)
            previous_stream = out.get("name")
            continue
        previous_stream = None
        if kind == "error":
            items.setdefault("error", []).append(f"{out.get('ename')}: {sanitize(out.get('evalue', ''))}")
            continue
        for mime, value in (out.get("data") or {}).items():
            if mime in SKIPPED_KEYS or (not images and mime.startswith("image/")):
                continue
            # JSON outputs hold objects; text outputs may be stored as a list of lines.
            value = json.dumps(value, sort_keys=True) if mime.endswith("json") else output_text(value)
            if mime not in ("image/png", "image/jpeg"):
                value = sanitize(value)
            items.setdefault(mime, []).append(value)
    return items


def compare_outputs(stored, rerun, policy=Policy(), sanitize=lambda text: text, images=True):
    """Problems between a cell's stored and re-run outputs (lists of nbformat output dicts)."""
    s_items = output_items(stored, sanitize, images)
    r_items = output_items(rerun, sanitize, images)
    problems = []
    if set(s_items) != set(r_items):
        missing, extra = sorted(set(s_items) - set(r_items)), sorted(set(r_items) - set(s_items))
        if missing:
            problems.append(f"the re-run has no {', '.join(missing)} output (the stored cell has)")
        if extra:
            problems.append(f"the re-run has {', '.join(extra)} output that the stored cell has not")
        return problems
    for key, s_values in s_items.items():
        r_values = r_items[key]
        if len(s_values) != len(r_values):
            problems.append(f"{key}: {len(s_values)} output(s) stored, {len(r_values)} in the re-run")
            continue
        compare = COMPARERS.get(key, compare_text)
        for n, (s_value, r_value) in enumerate(zip(s_values, r_values)):
            label = key if len(s_values) == 1 else f"{key} #{n + 1}"
            problems += compare(s_value, r_value, policy, what=label)
    return problems
