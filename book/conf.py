"""Sphinx configuration of the HTML book.

``python -m d2l_tools.book build`` copies this folder next to the MyST pages it
generates from the notebooks and runs ``sphinx-build -W`` on the copy, so edit it here.
Everything the pages need is served from the book itself: no CDN, no web fonts.
"""

from d2l_shim import FRAMEWORK_INFO, FRAMEWORKS

project = "Multilayer Perceptrons in Four Frameworks"
author = "the d2l-shim authors"
copyright = "the d2l-shim authors"

root_doc = "index"
source_suffix = {".md": "markdown"}
exclude_patterns = ["**/_notebooks"]
templates_path = ["_templates"]

extensions = [
    "myst_parser",
    "sphinx_design",
    "sphinx_copybutton",
    "sphinxcontrib.bibtex",
]

# Citations: the notebooks cite as [Author, Year](#key) and end with a References cell;
# d2l_tools.citations turns these into footnote citations and a reference list on each page.
bibtex_bibfiles = ["references.bib"]

# MathJax 3 is served from _static/mathjax: d2l_tools.book copies in the parts the pages
# use (the TeX input, the CommonHTML output and its fonts) after sphinx-build.
mathjax_path = "mathjax/tex-chtml.js"

# Copy buttons on code cells only: the stored outputs are code blocks of language "none".
copybutton_selector = "div.highlight-ipython3 pre"

myst_enable_extensions = ["colon_fence", "dollarmath", "amsmath"]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_css_files = ["d2l-book.css"]
html_js_files = ["framework-picker.js", "theme-fixes.js"]
html_favicon = "_static/favicon.svg"  # else browsers ask for /favicon.ico and get a 404
html_last_updated_fmt = None
html_show_sphinx = False
html_copy_source = False  # the generated .md pages are no use to a reader
html_theme_options = {
    # The framework picker sits in the sticky bar above every page's text.
    "article_header_start": ["toggle-primary-sidebar.html", "framework-picker.html"],
    "use_download_button": False,  # the pages carry their own notebook downloads
    "use_fullscreen_button": False,
    "home_page_in_toc": True,
    "show_navbar_depth": 2,
    "show_prev_next": True,
    # No top navbar: the sidebar already has the search field.
    "navbar_persistent": [],
}
html_context = {
    "d2l_frameworks": [(name, FRAMEWORK_INFO[name].label) for name in FRAMEWORKS],
    # Light or dark as the reader's system says until they pick one (unset, the theme's script
    # logs "invalid theme mode" on every page).
    "default_mode": "auto",
}


def setup(app):
    from d2l_tools.citations import setup_sphinx

    setup_sphinx(app)
