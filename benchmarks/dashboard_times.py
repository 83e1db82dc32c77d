"""The dashboard's render and click times against the stack the settings name
(``KKBOX_LAKE_URI``, ``MLFLOW_TRACKING_URI``, ``KKBOX_SERVICE_URL``...), as ``make dashboard``
would show it: in a real browser (``streamlit run`` and headless Chromium), or in-process with
Streamlit's AppTest.

    python benchmarks/dashboard_times.py                   # the browser; the checkout's dashboard
    python benchmarks/dashboard_times.py --apptest         # script runs only, no browser
    python benchmarks/dashboard_times.py --app OTHER/dashboard/app.py --repeat 3

Prints, in seconds: the first render (a fresh server: imports and cold caches included), a
second visitor's render (a new session, warm caches), then each click: opening every tab, and
the widgets both layouts have (the traffic window, the campaign's filters, the explanation's
button) and the campaign's what-if (its offer cost, where the page has one), each the median of
``--repeat`` clicks. In the browser a click lasts from the click to the last change of the page
it caused (once the script has stopped and the page has been still for half a second); with
AppTest it is the script run alone, without sending or drawing the page. Needs ``make demo``,
and for the campaign, drift and live figures a scored cohort, a drift report and a
running service.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from loadtests.servers import free_port  # noqa: E402

APP = ROOT / "dashboard" / "app.py"
#: The session-state key of the dashboard's tabs (``dashboard/app.py``).
TAB_KEY = "tab"


Click = tuple[Callable[[], object], Callable[[], object]]  # (untimed setup, timed action)


def _widget(widgets: Sequence[Any], label: str) -> Any:
    found = [w for w in widgets if w.label.startswith(label)]
    return found[0] if found else None


def _open(app: AppTest, tab: str) -> None:
    if any(t.label == tab for t in app.tabs):  # the tab's URL parameter and its state
        app.query_params[TAB_KEY] = tab
        app.session_state[TAB_KEY] = tab
        app.run()


def clicks(app: AppTest) -> dict[str, Click]:
    """The interactions to time: each an untimed setup (opening the widget's tab) and one script
    run, a no-op where the dashboard has no such widget."""
    labels = [t.label for t in app.tabs]
    found: dict[str, Click] = {"rerun, nothing changed": (lambda: None, app.run)}
    for index, tab in enumerate(labels):
        other = labels[index - 1]
        found[f"open the {tab} tab"] = (
            lambda other=other: _open(app, other),  # type: ignore[misc]
            lambda tab=tab: _open(app, tab),  # type: ignore[misc]
        )

    def widget(kind: str, label: str, tab: str, act: Callable[[Any], object]) -> None:
        def click() -> None:
            target = _widget(getattr(app, kind), label)
            if target is not None:
                act(target)
                app.run()

        found[f"{kind} {label!r}"] = (lambda: _open(app, tab), click)

    widget("slider", "days of traffic", "Live", lambda w: w.set_value(w.value % 30 + 1))
    widget("checkbox", "targeted only", "Campaign", lambda w: w.set_value(not w.value))
    widget(
        "selectbox",
        "with the reason",
        "Campaign",
        lambda w: w.set_value(w.options[1] if w.value == "any" else "any"),
    )
    # the what-if: the campaign recomputed from the scored cohort under another offer cost
    widget("number_input", "offer cost", "Campaign", lambda w: w.set_value(w.value % 20 + 1))
    widget("button", "Explain", "Subscriber", lambda w: w.click())
    return found


def timed(setup: Callable[[], object], action: Callable[[], object]) -> float:
    setup()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def apptest_figures(app_path: Path, repeat: int) -> None:
    first = AppTest.from_file(str(app_path), default_timeout=600)
    _print("first render, fresh process", [timed(lambda: None, first.run)])
    app = AppTest.from_file(str(app_path), default_timeout=600)
    _print("second visitor, new session", [timed(lambda: None, app.run)])
    if app.exception:
        print(f"the page raised: {app.exception[0].message}")
    for name, (setup, action) in clicks(app).items():
        _print(name, [timed(setup, action) for _ in range(repeat)])


#: Records, in the page, when the page last changed and when the user last pressed or clicked.
#: A script run that reads only caches can end before the page ever shows it running, so a
#: click is over when the script has stopped and the page has not changed for QUIET_MS.
WATCH = """
window.__changed = 0;
window.__input = 0;
new MutationObserver(() => { window.__changed = performance.now(); }).observe(
  document, {subtree: true, childList: true, attributes: true, characterData: true});
for (const kind of ["pointerdown", "keydown"]) {
  document.addEventListener(kind, () => { window.__input = performance.now(); }, true);
}
"""
QUIET_MS = 500
SETTLED = f"""() => {{
  const app = document.querySelector('[data-testid="stApp"]');
  return app && app.getAttribute("data-test-script-state") === "notRunning"
    && window.__changed > window.__input
    && performance.now() - window.__changed > {QUIET_MS};
}}"""
TIMEOUT_MS = 120_000


def _seconds_to_settle(page: Any, act: Callable[[], object]) -> float:
    """Seconds from the last input of ``act`` to the page's last change it caused."""
    act()
    page.wait_for_function(SETTLED, timeout=TIMEOUT_MS)
    changed, pressed = page.evaluate("[window.__changed, window.__input]")
    return float(changed - pressed) / 1000


def _first_render(browser: Any, url: str) -> tuple[Any, float]:
    """A new session's page, and the seconds from navigation to the page's last change."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.add_init_script(WATCH)
    page.goto(url)
    page.wait_for_function(SETTLED, timeout=TIMEOUT_MS)
    return page, float(page.evaluate("window.__changed")) / 1000


def _tab_click(page: Any, tab: str) -> Callable[[], object]:
    return lambda: page.get_by_role("tab", name=tab, exact=True).click()


def _browser_clicks(page: Any) -> dict[str, tuple[str | None, Callable[[], object]]]:
    """Each click: the tab to open first (untimed), and the click itself."""
    tabs = [t.inner_text() for t in page.get_by_role("tab").all()]
    found: dict[str, tuple[str | None, Callable[[], object]]] = {}
    for index, tab in enumerate(tabs):
        found[f"open the {tab} tab"] = (tabs[index - 1], _tab_click(page, tab))

    def reason() -> None:  # another reason than the one shown: any, the first, any...
        box = page.locator('[data-testid="stSelectbox"]').filter(has_text="with the reason")
        choice = box.get_by_role("combobox")
        showing_any = choice.input_value() == "any"
        choice.focus()
        page.keyboard.press("ArrowDown")  # opens the list (a click on it does not, headless)
        options = page.get_by_role("option")
        (options.nth(1) if showing_any else options.filter(has_text="any").first).click()

    campaign, subscriber = ("Campaign", "Subscriber") if tabs else (None, None)
    found["checkbox 'targeted only'"] = (
        campaign,
        lambda: page.get_by_text("targeted only", exact=True).click(),
    )
    found["selectbox 'with the reason'"] = (campaign, reason)
    found["number_input 'offer cost'"] = (  # the what-if, recomputed from the scored cohort
        campaign,
        lambda: (
            page.locator('[data-testid="stNumberInput"]')
            .filter(has_text="offer cost")
            .get_by_test_id("stNumberInputStepUp")
            .click()
        ),
    )
    found["button 'Explain'"] = (
        subscriber,
        lambda: page.get_by_role("button", name="Explain", exact=True).click(),
    )
    return found


def browser_figures(app_path: Path, repeat: int) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(app_path),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(f"{url}_stcore/health")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=BROWSER, args=BROWSER_FLAGS)
            page, seconds = _first_render(browser, url)
            _print("first render, fresh server", [seconds])
            page.close()
            page, seconds = _first_render(browser, url)
            _print("second visitor, new session", [seconds])
            for name, (tab, click) in _browser_clicks(page).items():
                times = []
                try:
                    for _ in range(repeat):
                        if tab:
                            current = page.get_by_role("tab", selected=True).inner_text()
                            if current != tab:
                                _seconds_to_settle(page, _tab_click(page, tab))
                        times.append(_seconds_to_settle(page, click))
                except LookupError as missing:
                    print(f"{name:<34} -      ({missing})")
                    continue
                _print(name, times)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


#: Debian's chromium and the flags it runs with here (docs: local-stack.md).
BROWSER = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


def _print(name: str, times: list[float]) -> None:
    runs = f"  (runs: {', '.join(f'{t:.2f}' for t in times)})" if len(times) > 1 else ""
    print(f"{name:<34} {statistics.median(times):6.2f} s{runs}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", type=Path, default=APP)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--apptest", action="store_true", help="script runs only, no browser")
    args = parser.parse_args()
    if args.apptest:
        apptest_figures(args.app, args.repeat)
    else:
        browser_figures(args.app, args.repeat)


if __name__ == "__main__":
    main()
