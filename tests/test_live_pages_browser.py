"""The live pages in a real browser: Debian's headless chromium driven by Playwright, a real
``callintent serve`` (tests/server_harness.py, the tiny keyword model and the bundled ASR), and a
real call played in at real time with serving.client (an espeak-ng telephone recording).

Checked as a supervisor and an agent would see it: the call appears on the wallboard, the
screen-pop's buying probability updates as words arrive, the decision and its next step show,
the evidence is highlighted in the transcript, and the call leaves the wallboard when it ends.
Screenshots go to the test's temporary folder (their paths are printed: ``pytest -s``).

Playwright's own browser download cannot work here: the test points it at the system chromium
(``/usr/bin/chromium``, which .ci/run installs).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.server_harness import live_server, serving_tmp, spoken  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
#: The caller's opening: keywords of the tiny model (facebook, ad, much, install, roof) arrive over ~5 s.
OPENING = "hello, I saw your facebook ad. how much would it cost to install a new roof?"
CALL_ID = "browser-call-1"


@pytest.fixture(scope="module")
def browser():
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def test_wallboard_and_screen_pop_follow_a_real_call(browser, live_server, tmp_path):  # noqa: F811
    from serving.client import CallIntentClient

    audio = spoken(OPENING, tmp_path, "opening.wav", pad_seconds=1.5)
    shots: list[Path] = []

    def shot(page, name: str) -> None:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shots.append(path)

    wall = browser.new_page(viewport={"width": 1280, "height": 420})
    wall.goto(f"{live_server.url}/live")
    wall.wait_for_selector("#status.ok")
    pop = browser.new_page(viewport={"width": 820, "height": 900})
    pop.goto(f"{live_server.url}/live/calls/{CALL_ID}")  # opened at ring time, before the call starts
    # Selector waits, not wait_for_function: a polled JS string is eval'd in the page, which the
    # pages' Content-Security-Policy (script-src 'self') rightly refuses.
    pop.wait_for_selector("#status:text-matches('^waiting')")

    events: list[dict] = []
    errors: list[BaseException] = []

    def play() -> None:
        try:
            with CallIntentClient(live_server.url) as client:
                events.extend(client.stream(audio, realtime=True, call_id=CALL_ID,
                                            metadata={"source": "facebook_ads", "campaign": "spring-roofs"}))
        except BaseException as e:  # reported by the test thread
            errors.append(e)

    caller = threading.Thread(target=play, daemon=True)
    started = time.monotonic()
    caller.start()
    try:
        row = wall.wait_for_selector(f'tr[data-call-id="{CALL_ID}"]', timeout=10_000)
        assert "facebook_ads / spring-roofs" in row.inner_text()

        # The probability follows the words: several points, and the transcript grows, while the call runs.
        seen: list[tuple[int, str, str]] = []
        deadline = time.monotonic() + 20
        while caller.is_alive() and time.monotonic() < deadline:
            points = int(pop.eval_on_selector("#spark", "e => e.dataset.points || '0'"))
            state = (points, pop.inner_text("#probability"), pop.inner_text("#transcript"))
            if not seen or state != seen[-1]:
                seen.append(state)
            if points >= 2 and len(shots) == 0:
                shot(wall, "1-wallboard-live")
                shot(pop, "2-screen-pop-live")
            time.sleep(0.2)
        caller.join(timeout=30)
        assert not errors, errors
        live = [s for s in seen if s[0] >= 1]
        assert len({s[0] for s in live}) >= 2, f"the probability never updated while the call ran: {seen}"
        assert len({s[2] for s in live}) >= 2, f"the transcript never grew while the call ran: {seen}"

        # The end: the decision, its next step and the highlighted evidence; the call leaves the floor.
        final = events[-1]
        assert final["type"] == "final", [e["type"] for e in events]
        route = final["decision"]["route"]
        pop.wait_for_selector("body[data-state='ended']", timeout=10_000)
        assert pop.get_attribute("#route", "class") == f"route route-{route}"
        assert pop.inner_text("#next-step").strip() and "Decided once" not in pop.inner_text("#next-step")
        assert pop.inner_text("#transcript") == final["transcript"]["text"]
        marks = pop.eval_on_selector_all("mark.evidence", "ms => ms.map(m => [m.textContent, m.dataset.signals])")
        evidence = {e["text"]: s["name"] for s in final["signals"] for e in s["evidence"]}
        assert marks, f"no evidence highlighted in {final['transcript']['text']!r} (signals {final['signals']})"
        for text, signals in marks:  # each mark is a piece of evidence of the signals it names
            assert any(t in text and name in signals.split() for t, name in evidence.items()), (text, evidence)
        assert pop.inner_text("#status") == "call ended"
        if "ad_reference" in {s["name"] for s in final["signals"]}:
            assert "saw your Facebook ad" in pop.inner_text("#headline")
        assert pop.inner_text("#origin") == "Source: facebook_ads · campaign spring-roofs"
        shot(pop, "3-screen-pop-ended")
        wall.wait_for_selector(f'tr[data-call-id="{CALL_ID}"]', state="detached", timeout=10_000)
        assert wall.is_visible("#empty")
        shot(wall, "4-wallboard-after")
    finally:
        caller.join(timeout=30)
        for page in (wall, pop):
            page.close()
    elapsed = time.monotonic() - started
    for path in shots:
        print(f"screenshot: {path}")
    assert len(shots) == 4
    assert elapsed < 30, f"the browser test took {elapsed:.0f} s"
