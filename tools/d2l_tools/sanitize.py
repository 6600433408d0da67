"""What of a notebook's HTML and SVG outputs the book may publish.

A notebook output is written by whoever ran the notebook, so the book treats it as hostile:
a ``<script>`` in it would run for every reader of the published book.

* **HTML** (``text/html``) goes through nh3 (ammonia, an HTML5-parsing sanitizer) with an
  allowlist: the table markup a data frame prints and a little inline markup, and no
  attribute that can hold a URL, a style or a script. Whatever is not on the list is
  stripped (the contents of ``<script>`` and ``<style>`` with it), so the result is safe
  whatever came in. ``sanitize_html`` also names what it stripped, so that the book can show
  the output's plain-text form instead and say why.
* **SVG** (``image/svg+xml``) is published as a file of its own, which a reader may open
  directly, so it is held to the same rule but checked instead of rewritten: a figure that
  passes is published byte for byte, one that does not is refused with what is wrong.
  ``svg_problems`` parses it with defusedxml (no entity expansion, no external entities, as
  the browser's XML parser would see it) and allows the elements and attributes that
  matplotlib and the chapter's drawn figures use, references inside the figure only
  (``#id``, ``url(#id)``) and embedded PNG/JPEG images; no scripts, event attributes,
  animation, ``foreignObject``, links, style sheets from elsewhere or processing instructions.

Today the chapter's outputs are text and PNG images only; the HTML allowlist is what a
table from a data frame needs, the SVG allowlist what matplotlib's SVG backend writes (the
format ``d2l.use_svg_display()`` switches to) and what the figures in ``img/`` use.
"""

import html
import html.parser
import re

import nh3

# ---------------------------------------------------------------- HTML

HTML_TAGS = frozenset(
    {
        "table",
        "thead",
        "tbody",
        "tfoot",
        "tr",
        "th",
        "td",
        "caption",
        "colgroup",
        "col",
        "div",
        "span",
        "p",
        "br",
        "b",
        "i",
        "em",
        "strong",
        "code",
        "pre",
        "small",
        "sub",
        "sup",
        "ul",
        "ol",
        "li",
    }
)
_CELL_ATTRIBUTES = {"colspan", "rowspan", "align", "valign"}
HTML_ATTRIBUTES = {
    "*": {"class", "title"},
    "table": {"border"},
    "th": _CELL_ATTRIBUTES,
    "td": _CELL_ATTRIBUTES,
    "col": {"span"},
    "colgroup": {"span"},
}
# Dropped with everything inside them (other stripped tags keep their text, escaped).
HTML_DROPPED_WITH_CONTENT = frozenset({"script", "style"})


def _allowed_html_attribute(tag, name):
    return name in HTML_ATTRIBUTES["*"] or name in HTML_ATTRIBUTES.get(tag, ())


class _Inventory(html.parser.HTMLParser):
    """Names what ``markup`` uses beyond the allowlist (for the message; nh3 does the cleaning)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found = set()

    def handle_starttag(self, tag, attrs):
        if tag not in HTML_TAGS:
            self.found.add(f"<{tag}>")
        for name, _ in attrs:
            if not _allowed_html_attribute(tag, name):
                self.found.add(f"{name}=")

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        if tag not in HTML_TAGS:
            self.found.add(f"<{tag}>")

    def handle_comment(self, data):
        self.found.add("a comment")

    def handle_decl(self, decl):
        self.found.add(f"<!{decl.split()[0] if decl.split() else ''}>")

    def unknown_decl(self, data):
        self.found.add(f"<![{data.split('[')[0]}[")

    def handle_pi(self, data):
        self.found.add("<?…>")


def clean_html(markup):
    """``markup`` with everything outside the allowlist removed (nh3)."""
    return nh3.clean(
        markup,
        tags=set(HTML_TAGS),
        clean_content_tags=set(HTML_DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in HTML_ATTRIBUTES.items()},
        url_schemes=set(),  # no allowed attribute holds a URL; none may anyway
        strip_comments=True,
        link_rel=None,
    )


def sanitize_html(markup):
    """``(clean, stripped)``: the publishable HTML and what was taken out of ``markup``, named.

    ``stripped`` is empty when the markup used nothing outside the allowlist. It is found
    with Python's HTML parser, which may read broken markup differently from nh3's HTML5
    parser: it only informs the choice of what to show; ``clean`` is safe either way.
    """
    inventory = _Inventory()
    inventory.feed(markup)
    inventory.close()
    clean = clean_html(markup)
    stripped = sorted(inventory.found)
    if not stripped and _squeeze(clean) != _squeeze(markup):
        stripped = ["markup the HTML parser could not read"]
    return clean, stripped


def _squeeze(markup):
    """What a reader would see of ``markup``: tags and white space aside, entities decoded."""
    return re.sub(r"\s+", "", html.unescape(re.sub(r"<[^>]*>", "", markup)))


# ---------------------------------------------------------------- SVG

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"
# matplotlib's <metadata> block: RDF with Dublin Core and Creative Commons terms.
METADATA_NS = frozenset(
    {
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
        "http://purl.org/dc/elements/1.1/",
        "http://creativecommons.org/ns#",
        "http://purl.org/dc/dcmitype/",
    }
)
SVG_ELEMENTS = frozenset(
    {
        "svg",
        "g",
        "defs",
        "title",
        "desc",
        "metadata",
        "style",
        "clipPath",
        "mask",
        "symbol",
        "use",
        "path",
        "rect",
        "circle",
        "ellipse",
        "line",
        "polyline",
        "polygon",
        "text",
        "tspan",
        "image",
        "marker",
        "linearGradient",
        "radialGradient",
        "stop",
        "pattern",
    }
)
SVG_ATTRIBUTES = frozenset(
    {
        # structure, geometry and accessibility
        "id",
        "class",
        "version",
        "viewBox",
        "preserveAspectRatio",
        "width",
        "height",
        "x",
        "y",
        "x1",
        "y1",
        "x2",
        "y2",
        "cx",
        "cy",
        "r",
        "rx",
        "ry",
        "fx",
        "fy",
        "d",
        "points",
        "transform",
        "dx",
        "dy",
        "role",
        "aria-label",
        "aria-labelledby",
        "aria-describedby",
        "type",
        "offset",
        "clipPathUnits",
        "maskUnits",
        "maskContentUnits",
        "gradientUnits",
        "gradientTransform",
        "patternUnits",
        "patternContentUnits",
        "patternTransform",
        "spreadMethod",
        "markerWidth",
        "markerHeight",
        "markerUnits",
        "refX",
        "refY",
        "orient",
        # presentation
        "style",
        "fill",
        "fill-opacity",
        "fill-rule",
        "stroke",
        "stroke-width",
        "stroke-opacity",
        "stroke-linecap",
        "stroke-linejoin",
        "stroke-miterlimit",
        "stroke-dasharray",
        "stroke-dashoffset",
        "opacity",
        "clip-path",
        "clip-rule",
        "mask",
        "color",
        "display",
        "visibility",
        "font-family",
        "font-size",
        "font-style",
        "font-weight",
        "font-variant",
        "text-anchor",
        "dominant-baseline",
        "alignment-baseline",
        "letter-spacing",
        "word-spacing",
        "text-decoration",
        "marker-start",
        "marker-mid",
        "marker-end",
        "stop-color",
        "stop-opacity",
        "image-rendering",
        "shape-rendering",
        "text-rendering",
        "paint-order",
        "vector-effect",
        f"{{{XML_NS}}}space",
    }
)
# Attributes holding a reference: to something in the same figure, or (image) embedded pixels.
SVG_LINKS = frozenset({"href", f"{{{XLINK_NS}}}href"})
EMBEDDED_IMAGE = re.compile(r"data:image/(png|jpeg);base64,[A-Za-z0-9+/=\s]*\Z")
LOCAL_URL = re.compile(r"url\(\s*#[\w.:-]+\s*\)")  # url(#clip0) and nothing else
# Anything in a value that could load or run something (after url(#id) is taken out); in
# style sheets also CSS escapes, which could spell either past this check.
UNSAFE_VALUE = re.compile(r"url\(|javascript:", re.IGNORECASE)
UNSAFE_CSS = re.compile(r"url\(|@import|@font-face|expression\s*\(|javascript:|\\", re.IGNORECASE)
XML_DECLARATION = re.compile(r"<\?xml\s")
INTERNAL_SUBSET = re.compile(r"<!DOCTYPE[^>\[]*\[", re.IGNORECASE)


def _local_name(tag):
    return tag.rsplit("}", 1)[-1]


def _namespace(tag):
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


def _value_problem(what, value, css=False):
    """Why an attribute value (or style text) could load or run something; None if it cannot."""
    rest = LOCAL_URL.sub("", value)
    if (UNSAFE_CSS if css else UNSAFE_VALUE).search(rest):
        return f"{what} {value[:60]!r} could load or run something from outside the figure"
    return None


def svg_problems(svg):
    """What keeps ``svg`` (str or bytes) from being published: [] when it may be.

    Each problem names the element or attribute, e.g. ``<script> is not allowed``.
    """
    import defusedxml.ElementTree as safe_xml
    from defusedxml import DefusedXmlException

    text = svg.decode("utf-8", errors="replace") if isinstance(svg, bytes) else svg
    problems = []
    if INTERNAL_SUBSET.search(text):
        problems.append("a DOCTYPE with declarations of its own ([...]) is not allowed")
    body = text.lstrip("\ufeff \t\r\n")
    if XML_DECLARATION.match(body):  # <?xml version=...?> may open the file, nothing else like it
        body = body[body.find("?>") + 2 :]
    if "<?" in body:
        problems.append("processing instructions (<?...?>, e.g. xml-stylesheet) are not allowed")
    try:
        root = safe_xml.fromstring(text.encode("utf-8"), forbid_dtd=False, forbid_entities=True, forbid_external=True)
    except (DefusedXmlException, safe_xml.ParseError) as err:
        return problems + [f"not well-formed XML without entities ({type(err).__name__}: {err})"]
    if root.tag != f"{{{SVG_NS}}}svg":
        return problems + [f"the root element is <{_local_name(root.tag)}>, not an SVG <svg>"]

    def visit(element, in_metadata):
        namespace, name = _namespace(element.tag), _local_name(element.tag)
        if in_metadata and namespace in METADATA_NS:
            for attribute in element.attrib:
                if _namespace(attribute) not in METADATA_NS:
                    problems.append(f"{_local_name(attribute)}= on <{name}> (metadata) is not allowed")
        elif namespace != SVG_NS or name not in SVG_ELEMENTS:
            problems.append(f"<{name}> is not allowed" + (f" (namespace {namespace})" if namespace != SVG_NS else ""))
            return
        else:
            for attribute, value in element.attrib.items():
                label = _local_name(attribute)
                if attribute in SVG_LINKS:
                    if not (value.startswith("#") or (name == "image" and EMBEDDED_IMAGE.match(value))):
                        problems.append(f"{label}={value[:60]!r} on <{name}> points outside the figure")
                elif attribute not in SVG_ATTRIBUTES:
                    problems.append(f"{label}= on <{name}> is not allowed")
                elif (problem := _value_problem(f"{label}=", value, css=label == "style")) is not None:
                    problems.append(f"{problem} (on <{name}>)")
            if name == "style":
                if element.get("type", "text/css") != "text/css":
                    problems.append(f"<style type={element.get('type')!r}> is not allowed")
                problem = _value_problem("<style> text", "".join(element.itertext()), css=True)
                if problem:
                    problems.append(problem)
        for child in element:
            visit(child, in_metadata or name == "metadata")

    visit(root, False)
    return list(dict.fromkeys(problems))  # each once, in document order
