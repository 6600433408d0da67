"""The one way the tooling and the tests start a browser: Debian's Chromium, headless, via Playwright.

Used by the PDF print (d2l_tools.pdf), the book's browser test and the JupyterLab test.
Debian's package, not Playwright's own download: it comes from the same apt sources as the
rest of the system and needs no network at test time.
"""

from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# Headless in a container: no sandbox (no user namespaces there), no GPU, and nothing that
# phones home (updates, sync, QUIC probes), so a run makes no request of its own.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
)
MISSING_HINT = "`make chromium` installs Debian's browser (or `apt-get install chromium` as root)"


class ChromiumMissing(RuntimeError):
    """Debian's Chromium is not installed; the message says how to install it."""


@contextmanager
def launch(executable=CHROMIUM):
    """A headless Chromium browser (Playwright's ``Browser``), closed on exit.

    Each launch has a fresh temporary profile, so runs share no cookies or storage.
    """
    if not Path(executable).exists():
        raise ChromiumMissing(f"{executable} is missing: {MISSING_HINT}")
    from playwright.sync_api import sync_playwright  # only where a browser is wanted

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=list(CHROMIUM_FLAGS), headless=True)
        try:
            yield browser
        finally:
            browser.close()
