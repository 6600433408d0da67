// Framework picker: the "Framework: [PyTorch] [MXNet] [TensorFlow] [JAX]" bar on every page.
//
// It drives sphinx-design's own synced-tab mechanism instead of keeping a second state:
// the choice lives under the same localStorage key that design-tabs.js reads
// (<data-sd-tabs-storage-prefix of its script tag> + sync group), and a page opened with
// ?framework=jax starts on JAX, as design-tabs.js does for pages that have tabs.
//
// Next to it, the "Side by side" switch shows every framework's code at once instead of tabs
// (d2l-book.css lays the panels out); the choice persists across pages like the framework.

(function () {
  "use strict";

  const SYNC_GROUP = "framework";
  const LAYOUT_KEY = "d2l-book-side-by-side";
  const LAYOUT_CLASS = "d2l-side-by-side";

  function storageKey() {
    const script = document.querySelector("script[data-sd-tabs-storage-prefix]");
    const prefix = script
      ? script.getAttribute("data-sd-tabs-storage-prefix")
      : "sphinx-design-tab-id-";
    return prefix ? prefix + SYNC_GROUP : null; // empty prefix: persistence disabled
  }

  function readStored() {
    const key = storageKey();
    try {
      return key ? window.localStorage.getItem(key) : null;
    } catch (err) {
      return null; // storage blocked: the picker still switches the current page
    }
  }

  function store(framework) {
    const key = storageKey();
    try {
      if (key) window.localStorage.setItem(key, framework);
    } catch (err) {
      // storage blocked; nothing to persist
    }
  }

  function readLayout() {
    try {
      return window.localStorage.getItem(LAYOUT_KEY) === "on";
    } catch (err) {
      return false;
    }
  }

  function setLayout(sideBySide) {
    document.documentElement.classList.toggle(LAYOUT_CLASS, sideBySide);
    for (const el of document.querySelectorAll(".d2l-layout-switch")) {
      el.setAttribute("aria-pressed", sideBySide ? "true" : "false");
    }
    try {
      window.localStorage.setItem(LAYOUT_KEY, sideBySide ? "on" : "off");
    } catch (err) {
      // storage blocked: the switch still changes the current page
    }
  }

  // At once, before the page is drawn, so that a side-by-side reader sees no tabs flash by.
  document.documentElement.classList.toggle(LAYOUT_CLASS, readLayout());

  function choices() {
    return Array.from(document.querySelectorAll(".d2l-picker-choice[data-framework]"));
  }

  function isKnown(framework) {
    return choices().some((el) => el.dataset.framework === framework);
  }

  function tabLabels(framework) {
    return document.querySelectorAll(
      `.sd-tab-label[data-sync-group="${SYNC_GROUP}"][data-sync-id="${framework}"]`
    );
  }

  // The radio input of a sphinx-design tab label (the label's `for` names it).
  function inputOf(label) {
    const input = document.getElementById(label.getAttribute("for") || "");
    return input instanceof HTMLInputElement ? input : null;
  }

  function showPressed(framework) {
    for (const el of choices()) {
      const on = el.dataset.framework === framework;
      el.setAttribute("aria-pressed", on ? "true" : "false");
      el.classList.toggle("d2l-picker-active", on);
    }
  }

  function choose(framework) {
    for (const label of tabLabels(framework)) {
      const input = inputOf(label);
      // Setting `checked` is what design-tabs.js itself does for synced tabs.
      if (input) input.checked = true;
    }
    store(framework);
    showPressed(framework);
    // A ?framework= left in the address would undo this choice on reload.
    const url = new URL(window.location.href);
    if (url.searchParams.has(SYNC_GROUP)) {
      url.searchParams.set(SYNC_GROUP, framework);
      window.history.replaceState(null, "", url);
    }
  }

  // The framework whose tabs are showing: the page's first framework tab-set decides;
  // on pages without tabs it is the stored choice (PyTorch, the first tab, by default).
  function shownFramework() {
    for (const label of document.querySelectorAll(
      `.sd-tab-label[data-sync-group="${SYNC_GROUP}"]`
    )) {
      const input = inputOf(label);
      if (input && input.checked) return label.getAttribute("data-sync-id");
    }
    const stored = readStored();
    return stored && isKnown(stored) ? stored : choices()[0]?.dataset.framework;
  }

  function ready() {
    // design-tabs.js only honours ?framework= on pages that have tabs; do it everywhere.
    const fromUrl = new URLSearchParams(window.location.search).get(SYNC_GROUP);
    if (fromUrl && isKnown(fromUrl)) store(fromUrl);

    for (const el of choices()) {
      el.addEventListener("click", (event) => {
        event.preventDefault(); // switch in place, no reload
        choose(el.dataset.framework);
      });
      // role="button": Space presses it too (Enter already clicks a link)
      el.addEventListener("keydown", (event) => {
        if (event.key === " ") {
          event.preventDefault();
          choose(el.dataset.framework);
        }
      });
    }
    for (const el of document.querySelectorAll(".d2l-layout-switch")) {
      el.hidden = false;
      el.setAttribute("aria-pressed", readLayout() ? "true" : "false");
      el.addEventListener("click", () => setLayout(el.getAttribute("aria-pressed") !== "true"));
    }
    // A click on a tab (synced by design-tabs.js) moves the picker along.
    document.addEventListener("change", (event) => {
      const label = event.target instanceof HTMLInputElement && event.target.nextElementSibling;
      if (label && label.getAttribute("data-sync-group") === SYNC_GROUP && event.target.checked) {
        showPressed(label.getAttribute("data-sync-id"));
      }
    });
    showPressed(shownFramework());
  }

  // design-tabs.js restores the stored tab on DOMContentLoaded too; run after it.
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => setTimeout(ready, 0));
  } else {
    ready();
  }
})();
