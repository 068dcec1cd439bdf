"""The web companion on a phone (390×844, touch) and a laptop (1440×900, and 1440×857: a 1440×1000
window less the browser's bars), in a real headless Chromium: what a member can see and reach
without hovering or scrolling. Every step is saved as a screenshot under tests/web/artifacts/."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from tests.bot.conftest import run_until
from tests.bot.test_imagine import finished
from tests.web.conftest import ARTIFACTS, UNLOCK_VOTES, login_link, screenshot

PHONE, LAPTOP, LAPTOP_SHORT = (390, 844), (1440, 900), (1440, 857)


def viewport(browser, size: tuple[int, int], *, touch: bool) -> None:
    width, height = size
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": touch})
    # A touch screen: `pointer: coarse`. Headless Chromium never has `hover` (as a phone), so Explore must
    # work without it at both sizes.
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": touch, "maxTouchPoints": 5})


def rect(browser, element) -> dict:
    return browser.execute_script("const r = arguments[0].getBoundingClientRect();"
                                  "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};", element)


def reachable(browser, element) -> bool:
    """Shown (not transparent) and the topmost element at its centre: a finger landing there hits it."""
    return browser.execute_script(
        "const el = arguments[0], r = el.getBoundingClientRect();"
        "let node = el; while (node) { if (parseFloat(getComputedStyle(node).opacity) < 0.5) return false; node = node.parentElement; }"
        "const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);"
        "return r.width > 0 && r.height > 0 && r.bottom <= innerHeight && (hit === el || el.contains(hit));", element)


def overlap(a: dict, b: dict) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]


def png(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(out, "PNG")
    return out.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("with_rank_pool", [True])
async def test_a_member_on_a_phone_and_a_laptop_reaches_everything(simcord_env, world, simcord_bot, browser, base_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    _, channel, alice, bob = world
    await bob.slash(channel, "imagine", prompt="a lighthouse at dusk, long exposure, wide angle --seed 11")
    await run_until(simcord_env, lambda: finished(channel, "a lighthouse at dusk"))
    link = await login_link(alice, channel)
    ARTIFACTS.mkdir(exist_ok=True)
    uploads = [ARTIFACTS / f"{colour}.png" for colour in ("red", "navy")]
    for path in uploads:
        path.write_bytes(png(path.stem))
    wait = WebDriverWait(browser, 20)
    all_images_loaded = "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"

    def in_the_browser() -> None:
        browser.get(link)
        browser.find_element(By.ID, "continue").click()
        wait.until(EC.url_contains("/rank"))

        # 1. Explore on a phone: every tile shows its prompt, maker and ♥ without a hover, and a tap likes.
        viewport(browser, PHONE, touch=True)
        browser.get(f"{base_url}/explore")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".tile img")) == 4)
        wait.until(lambda d: d.execute_script(all_images_loaded))
        screenshot(browser, "screens-1-explore-390")
        tile = browser.find_elements(By.CSS_SELECTOR, ".tile")[0]
        for part in (".tile-prompt", ".by", ".like"):
            assert reachable(browser, tile.find_element(By.CSS_SELECTOR, part)), part
        like = tile.find_element(By.CSS_SELECTOR, ".like")
        like.click()
        wait.until(lambda d: "liked" in like.get_attribute("class"))
        assert like.find_element(By.CSS_SELECTOR, ".count").text == "1"
        viewport(browser, LAPTOP, touch=False)
        browser.get(f"{base_url}/explore")
        wait.until(lambda d: d.execute_script(all_images_loaded))
        screenshot(browser, "screens-2-explore-1440")

        # 2. Rank on a laptop whose window leaves 857 px: the pair, Skip and what was chosen all above the
        #    fold, and the unlock toast covers neither key badge.
        viewport(browser, LAPTOP_SHORT, touch=False)
        browser.get(f"{base_url}/rank")
        wait.until(lambda d: d.execute_script(all_images_loaded))
        screenshot(browser, "screens-3-rank-1440x857")
        body = browser.find_element(By.TAG_NAME, "body")
        for vote in range(UNLOCK_VOTES):
            body.send_keys("1" if vote % 2 == 0 else "2")
            wait.until(lambda d: d.find_element(By.ID, "pair").get_attribute("data-votes") == str(vote + 1))
        toast = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#toast.show"))
        assert "unlocked" in toast.get_attribute("textContent")
        browser.execute_script("arguments[0].style.transition = 'none'", toast)  # where it ends up, not mid-slide
        screenshot(browser, "screens-4-rank-unlocked-1440x857")
        for element in (browser.find_element(By.ID, "skip"), browser.find_element(By.ID, "reveal-text")):
            assert rect(browser, element)["bottom"] <= LAPTOP_SHORT[1], element.get_attribute("id")
        assert "you chose" in browser.find_element(By.ID, "reveal-text").text
        for key in browser.find_elements(By.CSS_SELECTOR, ".choice .key"):
            assert not overlap(rect(browser, toast), rect(browser, key)), key.text
        viewport(browser, PHONE, touch=True)
        browser.get(f"{base_url}/rank")
        wait.until(lambda d: d.execute_script(all_images_loaded))
        screenshot(browser, "screens-5-rank-390")
        assert rect(browser, browser.find_element(By.ID, "skip"))["bottom"] <= PHONE[1]

        # 3. Profile: plurals read right ("1 like"), and the moodboard upload is a real control.
        for size, touch, name in ((PHONE, True, "390"), (LAPTOP, False, "1440")):
            viewport(browser, size, touch=touch)
            browser.get(f"{base_url}/profile")
            assert browser.find_element(By.ID, "likes").text == "1"
            assert browser.find_element(By.ID, "likes-label").text == "Like"
            codes = browser.find_element(By.CSS_SELECTOR, "table.codes").text
            assert "4 votes · 1 like" in codes and "1 likes" not in codes, codes
            files = browser.find_element(By.ID, "moodboard-files")
            assert not files.is_displayed()  # no bare "Choose Files": the label is the control
            choose = browser.find_element(By.CSS_SELECTOR, "label[for=moodboard-files]")
            assert choose.is_displayed() and "Choose up to 10 images" in choose.text
            assert not browser.find_element(By.ID, "moodboard-submit").is_enabled()
            screenshot(browser, f"screens-6-profile-{name}")
            browser.execute_script("document.querySelector('table.codes').scrollIntoView()")
            screenshot(browser, f"screens-7-profile-codes-{name}")
        files.send_keys("\n".join(str(path) for path in uploads))
        chosen = wait.until(lambda d: d.find_element(By.ID, "moodboard-chosen"))
        assert chosen.text == "2 images: red.png, navy.png", chosen.text
        assert browser.find_element(By.ID, "moodboard-submit").is_enabled()
        screenshot(browser, "screens-8-profile-chosen-1440")
        browser.find_element(By.ID, "moodboard-submit").click()
        # (read in the page: the list item is replaced as the moodboard's state comes in)
        first_board = "const li = document.querySelector('#boards li'); return li ? li.textContent : '';"
        wait.until(lambda d: d.execute_script(first_board).startswith("2 images · "))
        assert browser.find_element(By.ID, "moodboard-chosen").text == "", "the form is cleared for the next one"

    await asyncio.to_thread(in_the_browser)
