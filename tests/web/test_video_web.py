"""Animate on the web companion, in a real headless Chromium against the bot's web server: the image
page's Animate queues the video job, its clips play there (muted, looping, first frame as poster), on
the clip's own page and on Explore; only the maker may animate."""

from __future__ import annotations

import asyncio

from engine.db import jobs as db_jobs
from tests.bot.conftest import run_until
from tests.bot.test_imagine import finished
from tests.web.conftest import login_link, screenshot, signed_in

PLAYING = ("const v = arguments[0]; return v.readyState >= 2 && !v.paused && v.muted && v.loop"
           " && v.videoWidth > 0 && v.poster.includes('/img/')")


async def test_animate_from_the_image_page_and_clips_play_everywhere(simcord_env, world, mod, simcord_bot, browser, base_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, channel, alice, bob = world
    await mod.slash(channel, "admin video", clips=2)
    await alice.slash(channel, "imagine", prompt="a paper boat on a pond --seed 4")
    await run_until(simcord_env, lambda: finished(channel, "a paper boat"))
    [(image_id,)] = await simcord_bot.db.execute_fetchall("SELECT MIN(id) FROM images")
    # Bob may see it but not animate it.
    other = await signed_in(bob, channel)
    async with other:
        async with other.post(f"{base_url}/api/image/{image_id}/animate", json={"motion": "low"},
                              headers={"X-CSRF-Token": other.csrf}) as answer:
            assert answer.status == 403 and "Only the member who made" in (await answer.json())["error"]
    link = await login_link(alice, channel)
    wait = WebDriverWait(browser, 30)

    def queue_it() -> None:
        browser.get(link)
        browser.find_element(By.ID, "continue").click()
        wait.until(lambda d: "/rank" in d.current_url)
        browser.get(f"{base_url}/image/{image_id}")
        browser.find_element(By.CSS_SELECTOR, '#animate-tool button[data-motion="high"]').click()
        wait.until(lambda d: "Animate" in d.find_element(By.ID, "animate-status").text)

    await asyncio.to_thread(queue_it)
    jobs = lambda: simcord_bot.db.execute_fetchall("SELECT id FROM jobs WHERE kind = 'video'")  # noqa: E731
    [(job_id,)] = await jobs()
    state = {}

    async def poll() -> None:
        state["job"] = await db_jobs.get_job(simcord_bot.db, job_id)

    await run_until(simcord_env, lambda: (asyncio.ensure_future(poll()) and False) or
                    (state.get("job") is not None and state["job"].delivered_at is not None))
    clips = [row[0] for row in await simcord_bot.db.execute_fetchall(
        "SELECT id FROM images WHERE job_id = ? ORDER BY idx", (job_id,))]
    assert len(clips) == 2 and state["job"].request["motion"] == "high"

    def watch_them() -> None:
        # 1. On the image page, the two clips appear and play.
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".animate-results video")) == 2)
        for video in browser.find_elements(By.CSS_SELECTOR, ".animate-results video"):
            wait.until(lambda d: d.execute_script(PLAYING, video))
        screenshot(browser, "video-1-image-page-animated")
        # 2. A clip's own page: the player, 64 px, 9 frames at 8 fps.
        browser.get(f"{base_url}/image/{clips[0]}")
        player = browser.find_element(By.ID, "main-video")
        wait.until(lambda d: d.execute_script(PLAYING, player))
        assert browser.execute_script("return [arguments[0].videoWidth, arguments[0].videoHeight, arguments[0].duration]",
                                      player) == [64, 64, 1.125]
        assert not browser.find_elements(By.ID, "animate-tool")  # a clip is extended in Discord, not animated again
        screenshot(browser, "video-2-clip-page")
        # 3. Explore plays the clips among the images.
        browser.get(f"{base_url}/explore")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".tile video.clip")) == 2)
        for video in browser.find_elements(By.CSS_SELECTOR, ".tile video.clip"):
            wait.until(lambda d: d.execute_script(PLAYING, video))
        screenshot(browser, "video-3-explore")

    await asyncio.to_thread(watch_them)
