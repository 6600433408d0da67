// Accessibility fixes to the theme's own markup, found by axe-core (tests/test_browser.py).

(function () {
  "use strict";

  function nameNavigationToggles() {
    // The navigation's expand/collapse toggles are <summary> elements that hold only an
    // icon; a screen reader announces them by the section they open.
    for (const summary of document.querySelectorAll(".bd-sidebar-primary details > summary")) {
      if (summary.textContent.trim() || summary.hasAttribute("aria-label")) continue;
      const link = summary.parentElement.parentElement.querySelector(":scope > a");
      const title = link ? link.textContent.trim() : "this part";
      summary.setAttribute("aria-label", `Sections of ${title}`);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", nameNavigationToggles);
  } else {
    nameNavigationToggles();
  }
})();
