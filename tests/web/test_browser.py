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


@pytest.mark.slow
async def test_the_owner_paints_a_region_in_the_browser_and_gets_its_variations(simcord_env, world, simcord_bot, browser, base_url):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.web.test_region import wait_for_job

    _, channel, alice, _ = world
    await alice.slash(channel, "imagine", prompt="a lighthouse at dusk --seed 11")
    await run_until(simcord_env, lambda: finished(channel, "a lighthouse at dusk"))
    [(image_id,)] = await simcord_bot.db.execute_fetchall("SELECT MIN(id) FROM images WHERE user_id = ?", (alice.id,))
    link = await login_link(alice, channel)
    wait = WebDriverWait(browser, 20)

    def paint_and_submit() -> str:
        # 1. Sign in, open the image, open the tool and paint a stroke down its left side.
        browser.get(link)
        browser.find_element(By.ID, "continue").click()
        wait.until(EC.url_contains("/rank"))
        browser.get(f"{base_url}/image/{image_id}")
        wait.until(EC.element_to_be_clickable((By.ID, "region-open"))).click()
        canvas = wait.until(EC.visibility_of_element_located((By.ID, "region-canvas")))
        width, height = canvas.size["width"], canvas.size["height"]
        assert width > 300 and abs(width - height) <= 2, canvas.size  # over the picture as shown, scaled up
        (ActionChains(browser).move_to_element_with_offset(canvas, -width // 3, -height // 3).click_and_hold()
         .move_by_offset(0, height // 3).move_by_offset(0, height // 3).move_by_offset(width // 8, 0).release().perform())
        painted = browser.find_element(By.ID, "region-cover").text
        assert painted != "0% painted" and painted.endswith("% painted"), painted
        prompt = browser.find_element(By.ID, "region-prompt")
        assert prompt.get_attribute("value") == "a lighthouse at dusk --seed 11"
        prompt.clear()
        prompt.send_keys("a lighthouse at dawn")
        screenshot(browser, "8-region-painted")
        # 2. Send it: the page says it is queued and where its images will be.
        browser.find_element(By.ID, "region-submit").click()
        line = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#region-status .region-job")))
        assert "Vary (Region)" in line.text, line.text
        screenshot(browser, "9-region-queued")
        return line.get_attribute("data-job")

    job_id = await asyncio.to_thread(paint_and_submit)
    [(prompt, parent)] = await simcord_bot.db.execute_fetchall("SELECT prompt, parent_image_id FROM jobs WHERE id = ?", (job_id,))
    assert (prompt, parent) == ("a lighthouse at dawn", image_id)
    import aiohttp  # the job runs while the bot's clock moves; the page polls on its own

    async with aiohttp.ClientSession(cookies={c["name"]: c["value"] for c in browser.get_cookies()}) as client:
        assert (await wait_for_job(simcord_env, client, base_url, job_id))["state"] == "done"

    def see_the_results() -> None:
        # 3. The page shows the four new images, each linking to its own page.
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".region-results img")) == 4)
        wait.until(lambda d: d.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
        screenshot(browser, "10-region-done")
        browser.find_element(By.CSS_SELECTOR, ".region-results a").click()
        wait.until(lambda d: "a lighthouse at dawn" in d.find_element(By.ID, "prompt").text)

    await asyncio.to_thread(see_the_results)


@pytest.mark.slow
@pytest.mark.parametrize("with_rank_pool", [True])
async def test_a_member_ranks_a_named_profile_in_the_browser(simcord_env, world, simcord_bot, browser, base_url):
    """Several profiles on the web, as on Midjourney's site: choose the profile, vote with the keys, and the
    votes teach that profile only (Discord's /profile list shows it unlocked, main untouched)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    _, channel, alice, _ = world
    prompts = {row[0] for row in await simcord_bot.db.execute_fetchall("SELECT prompt FROM pool_images")}
    made = await alice.slash(channel, "profile create", name="Portraits")
    assert made.ephemeral and "Profile **Portraits** created" in made.response.content
    link = await login_link(alice, channel)

    def in_the_browser() -> None:
        wait = WebDriverWait(browser, 20)
        browser.get(link)
        browser.find_element(By.ID, "continue").click()
        wait.until(EC.url_contains("/rank"))
        chips = browser.find_elements(By.CSS_SELECTOR, "nav.profiles a")
        assert [c.text for c in chips] == ["main", "Portraits"]
        assert chips[0].get_attribute("aria-current") == "page"
        chips[1].click()
        wait.until(EC.url_contains("profile=Portraits"))
        assert browser.find_element(By.CSS_SELECTOR, "nav.profiles a[aria-current]").text == "Portraits"
        prompt = browser.find_element(By.ID, "pair-prompt").text  # the pair shows its prompt
        assert prompt in prompts
        body = browser.find_element(By.TAG_NAME, "body")
        for vote in range(UNLOCK_VOTES):
            body.send_keys("2")
            wait.until(lambda d: d.find_element(By.ID, "pair").get_attribute("data-votes") == str(vote + 1))
        assert "Unlocked" in browser.find_element(By.ID, "progress-text").text
        wait.until(lambda d: "Portraits is unlocked!" in d.find_element(By.TAG_NAME, "body").text)
        screenshot(browser, "11-rank-profile")
        browser.get(f"{base_url}/rank?profile=nobody")
        assert "Not found" in browser.title

    await asyncio.to_thread(in_the_browser)

    listed = (await alice.slash(channel, "profile list")).response.content
    lines = {line.split(" · ")[0]: line for line in listed.splitlines()}
    assert lines["**Portraits**"].startswith(f"**Portraits** · {UNLOCK_VOTES} votes · `"), listed
    assert lines["**main**"].startswith("**main** · 0 votes · locked"), listed
