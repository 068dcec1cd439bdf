"""Deleting a job on the web: only its maker can, over real HTTP and in a real browser; its
images leave Explore and their files' routes, and the job's Discord message is cleared by
the upkeep pass, as /delete does in Discord."""

from __future__ import annotations

import asyncio

import pytest

from bot.retention import DELETED
from bot.web import thumbnails
from tests.bot.conftest import run_until
from tests.bot.test_imagine import finished, job_message
from tests.bot.test_retention import job_of, sweep
from tests.web.conftest import login_link, screenshot, signed_in


async def test_only_its_maker_deletes_a_job_and_then_no_page_or_file_route_shows_it(simcord_env, world, simcord_bot, base_url):
    _, channel, alice, bob = world
    await alice.slash(channel, "imagine", prompt="a glass bird --seed 6")
    await run_until(simcord_env, lambda: finished(channel, "a glass bird"))
    job_id, paths = await job_of(simcord_bot, channel, "a glass bird")
    [(image_id,)] = await simcord_bot.db.execute_fetchall("SELECT MIN(id) FROM images WHERE job_id = ?", (job_id,))
    grid = job_message(channel, "a glass bird")
    owner, other = await signed_in(alice, channel), await signed_in(bob, channel)
    async with owner, other:
        async with other.get(f"{base_url}/image/{image_id}") as answer:
            assert answer.status == 200 and 'id="delete-job"' not in await answer.text()  # not his to delete
        async with other.post(f"{base_url}/api/jobs/{job_id}/delete", headers={"X-CSRF-Token": other.csrf}) as answer:
            assert answer.status == 404 and (await answer.json())["error"] == "No such job of yours."
        async with owner.post(f"{base_url}/api/jobs/{job_id}/delete") as answer:
            assert answer.status == 403  # no CSRF token
        async with owner.get(f"{base_url}/image/{image_id}") as answer:
            assert f'id="delete-job" data-job="{job_id}"' in await answer.text()
        async with owner.post(f"{base_url}/api/jobs/{job_id}/delete", headers={"X-CSRF-Token": owner.csrf}) as answer:
            assert answer.status == 200 and await answer.json() == {"deleted": job_id, "images": 4}
        for client in (owner, other):
            async with client.get(f"{base_url}/explore") as answer:
                assert "a glass bird" not in await answer.text()
            for path in (f"/image/{image_id}", f"/img/{image_id}", thumbnails.image_url(image_id, paths[0], thumbnails.SMALL)):
                async with client.get(base_url + path) as answer:
                    assert answer.status == 404, path
        async with owner.post(f"{base_url}/api/jobs/{job_id}/delete", headers={"X-CSRF-Token": owner.csrf}) as answer:
            assert answer.status == 404  # once
    # The web has no Discord client: the upkeep pass clears the job's message.
    assert next(m for m in channel.history() if m.id == grid.id).attachments
    await sweep(simcord_bot)
    message = next(m for m in channel.history() if m.id == grid.id)
    assert message.content == DELETED and not message.attachments and not message.components


@pytest.mark.slow
async def test_the_delete_button_on_an_image_page(simcord_env, world, simcord_bot, browser, base_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    _, channel, alice, _ = world
    await alice.slash(channel, "imagine", prompt="a glass bird --seed 6")
    await run_until(simcord_env, lambda: finished(channel, "a glass bird"))
    [(image_id,)] = await simcord_bot.db.execute_fetchall("SELECT MIN(id) FROM images")
    link = await login_link(alice, channel)

    def in_the_browser() -> None:
        wait = WebDriverWait(browser, 20)
        browser.get(link)
        browser.find_element(By.ID, "continue").click()
        wait.until(EC.url_contains("/rank"))
        browser.get(f"{base_url}/image/{image_id}")
        wait.until(lambda d: d.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
        screenshot(browser, "15-image-own-delete")
        # Dismissed: nothing happens. Accepted: the job goes, and Explore has nothing left of it.
        browser.find_element(By.ID, "delete-job").click()
        wait.until(EC.alert_is_present()).dismiss()
        assert f"/image/{image_id}" in browser.current_url
        browser.find_element(By.ID, "delete-job").click()
        wait.until(EC.alert_is_present()).accept()
        wait.until(EC.url_contains("/explore"))
        assert not browser.find_elements(By.CSS_SELECTOR, ".tile img")
        screenshot(browser, "16-explore-after-delete")

    await asyncio.to_thread(in_the_browser)
    [(deleted,)] = await simcord_bot.db.execute_fetchall("SELECT deleted_at FROM jobs")
    assert deleted is not None
