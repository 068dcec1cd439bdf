"""A member in a real browser (headless Debian chromium through Selenium),
against the web server of a bot that SimCord runs: sign in through the /web
link, vote with the keyboard until the profile unlocks, like another member's
image, and see those votes and the like in /info in Discord. Every page is
saved as a screenshot under tests/web/artifacts/."""

from __future__ import annotations

import asyncio

import pytest

from tests.bot.conftest import run_until
from tests.bot.test_imagine import finished
from tests.web.conftest import UNLOCK_VOTES, login_link, screenshot


def field(embed, name: str) -> str:
    return next(f.value for f in embed.fields if f.name == name)


@pytest.mark.slow
@pytest.mark.parametrize("with_rank_pool", [True])
async def test_a_member_ranks_and_likes_in_the_browser_and_discord_sees_it(simcord_env, world, simcord_bot, browser, base_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    _, channel, alice, bob = world
    # 1. Bob makes a grid in the server: Explore has something to like.
    await bob.slash(channel, "imagine", prompt="a lighthouse at dusk --seed 11")
    await run_until(simcord_env, lambda: finished(channel, "a lighthouse at dusk"))
    [(bobs_first,)] = await simcord_bot.db.execute_fetchall("SELECT MIN(id) FROM images WHERE user_id = ?", (bob.id,))
    link = await login_link(alice, channel)

    def in_the_browser() -> None:
        wait = WebDriverWait(browser, 20)
        # 2. The link from /web: one button signs in.
        browser.get(link)
        screenshot(browser, "1-login")
        browser.find_element(By.ID, "continue").click()
        wait.until(EC.url_contains("/rank"))
        wait.until(lambda d: d.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
        screenshot(browser, "2-rank")
        # 3. Keys 1 and 2 vote; each answer brings the next pair and moves the bar.
        body = browser.find_element(By.TAG_NAME, "body")
        for vote in range(UNLOCK_VOTES):
            body.send_keys("1" if vote % 2 == 0 else "2")
            wait.until(lambda d: d.find_element(By.ID, "pair").get_attribute("data-votes") == str(vote + 1))
        text = browser.find_element(By.ID, "progress-text").text
        assert "Unlocked" in text, text
        assert "you chose" in browser.find_element(By.ID, "reveal-text").text
        screenshot(browser, "3-rank-unlocked")
        # 4. Explore shows the server's images; Bob's image page has ❤️ Like.
        browser.get(f"{base_url}/explore")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".tile img")) == 4)
        wait.until(lambda d: d.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
        screenshot(browser, "4-explore")
        browser.get(f"{base_url}/image/{bobs_first}")
        like = wait.until(EC.element_to_be_clickable((By.ID, "like")))
        like.click()
        wait.until(lambda d: "liked" in d.find_element(By.ID, "like").get_attribute("class"))
        assert browser.find_element(By.CSS_SELECTOR, "#like .count").text == "1"
        assert "a lighthouse at dusk" in browser.find_element(By.ID, "prompt").text
        screenshot(browser, "5-image")
        # 5. The profile shows the same numbers.
        browser.get(f"{base_url}/profile")
        assert browser.find_element(By.ID, "votes").text == str(UNLOCK_VOTES)
        assert browser.find_element(By.ID, "likes").text == "1"
        screenshot(browser, "6-profile")
        # 6. Another server's image is not there (Bob's server is Alice's; an unknown id is not).
        browser.get(f"{base_url}/image/{bobs_first + 1000}")
        assert "Not found" in browser.title
        screenshot(browser, "7-not-found")

    await asyncio.to_thread(in_the_browser)

    # 7. Discord's /info counts the web's votes and like.
    info = await alice.slash(channel, "info")
    [embed] = info.response.embeds
    assert field(embed, "Votes") == str(UNLOCK_VOTES)
    assert field(embed, "Likes") == "1"
    assert field(embed, "Profile").startswith("Unlocked")
