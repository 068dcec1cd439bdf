"""Thumbnails over real HTTP and in a real browser: WebP sized for the page, made once,
cached for good, checked like the originals; Explore loads them lazily, the image page
links the original and a download, and Rank preloads the pair after the one shown."""

from __future__ import annotations

import asyncio
import io
import re

import aiohttp
import numpy as np
import pytest
from PIL import Image

from bot.web import thumbnails
from tests.bot.conftest import run_until
from tests.bot.test_imagine import finished
from tests.web.conftest import login_link, screenshot, signed_in


def picture(side: int) -> bytes:
    """A 1024-px stand-in for a real result: smooth colour with some grain."""
    rng = np.random.default_rng(side)
    small = Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).resize((side, side), Image.BICUBIC)
    grain = rng.normal(0, 6, (side, side, 3))
    out = io.BytesIO()
    Image.fromarray(np.clip(np.asarray(small) + grain, 0, 255).astype(np.uint8)).save(out, "PNG")
    return out.getvalue()


async def test_requests_at_once_encode_a_thumbnail_once(tmp_path):
    (tmp_path / "images" / "j").mkdir(parents=True)
    (tmp_path / "images" / "j" / "1.png").write_bytes(picture(1024))
    cache = thumbnails.Thumbnails(tmp_path)
    paths = await asyncio.gather(*(cache.get("images/j/1.png", thumbnails.SMALL) for _ in range(8)))
    assert cache.encoded == 1 and len(set(paths)) == 1 and paths[0].is_file()
    assert await cache.get("images/j/1.png", thumbnails.LARGE) is not None and cache.encoded == 2
    assert await cache.get("images/j/2.png", thumbnails.SMALL) is None  # no original: nothing made
    assert await cache.get("../outside.png", thumbnails.SMALL) is None
    assert await cache.get("images/j/1.png", 100) is None  # only the two sizes
    assert cache.encoded == 2 and not cache._encoding  # no lock left behind


async def test_a_thumbnail_is_made_once_sized_and_cached_for_good(simcord_env, world, simcord_bot, base_url):
    guild, channel, alice, bob = world
    await bob.slash(channel, "imagine", prompt="a harbour at noon --seed 5")
    await run_until(simcord_env, lambda: finished(channel, "a harbour at noon"))
    [(image_id, path)] = await simcord_bot.db.execute_fetchall("SELECT id, path FROM images WHERE idx = 1")
    original = picture(1024)
    (simcord_bot.settings.data_dir / path).write_bytes(original)  # the default preset's size
    small = thumbnails.image_url(image_id, path, thumbnails.SMALL)
    client = await signed_in(alice, channel)
    async with client:
        # 1. Eight page loads at once: eight identical WebPs of 384 px.
        answers = []

        async def fetch() -> None:
            async with client.get(base_url + small) as answer:
                answers.append((answer.status, answer.headers.copy(), await answer.read()))

        await asyncio.gather(*(fetch() for _ in range(8)))
        assert {status for status, _, _ in answers} == {200}
        assert len({body for _, _, body in answers}) == 1
        status, headers, body = answers[0]
        assert headers["Content-Type"] == "image/webp"
        assert headers["Cache-Control"] == "private, max-age=31536000, immutable"
        etag = headers["ETag"]
        assert etag.startswith('"') and not etag.startswith("W/")  # strong
        made = Image.open(io.BytesIO(body))
        assert made.format == "WEBP" and made.size == (384, 384)
        assert len(body) < len(original) / 10
        cached = thumbnails.thumb_path(simcord_bot.settings.data_dir.resolve(), path, thumbnails.SMALL)
        assert cached.is_file() and cached.read_bytes() == body
        # 2. A browser that asks again with the ETag gets 304 and no body.
        async with client.get(base_url + small, headers={"If-None-Match": etag}) as answer:
            assert answer.status == 304 and await answer.read() == b""
        # 3. 768 px for Rank and the image page; no other size, no other version.
        async with client.get(base_url + thumbnails.image_url(image_id, path, thumbnails.LARGE)) as answer:
            assert answer.status == 200 and Image.open(io.BytesIO(await answer.read())).size == (768, 768)
        for bad in (f"/img/{image_id}/512/{thumbnails.version(path)}.webp", f"/img/{image_id}/384/0123456789.webp",
                    f"/img/{image_id + 99}/384/{thumbnails.version(path)}.webp"):
            async with client.get(base_url + bad) as answer:
                assert answer.status == 404, bad
        # 4. The original, whole, and as a download.
        async with client.get(f"{base_url}/img/{image_id}?download=1") as answer:
            assert await answer.read() == original
            assert answer.headers["Content-Disposition"].startswith('attachment; filename="tastemaker-')
    # 5. Another server's member: 404, as for the original; no session: 401.
    other = simcord_env.create_guild("Elsewhere")
    carol = other.add_member(simcord_env.create_user("carol"))
    outsider = await signed_in(carol, other.create_text_channel("general"))
    async with outsider:
        async with outsider.get(base_url + small) as answer:
            assert answer.status == 404 and await answer.read() != body
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(base_url + small) as answer:
            assert answer.status == 401


@pytest.mark.slow
@pytest.mark.parametrize("with_rank_pool", [True])
async def test_pages_load_thumbnails_lazily_and_rank_preloads_the_next_pair(simcord_env, world, simcord_bot, browser, base_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, channel, alice, bob = world
    for n in range(2):
        await bob.slash(channel, "imagine", prompt=f"a paper lantern {n} --seed {n + 3}")
        await run_until(simcord_env, lambda: finished(channel, f"a paper lantern {n}"))
    link = await login_link(alice, channel)
    loaded = "return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)"

    def in_the_browser() -> None:
        wait = WebDriverWait(browser, 20)
        browser.get(link)
        browser.find_element(By.ID, "continue").click()
        wait.until(lambda d: "/rank" in d.current_url)
        # 1. Rank: the pair shown is 768-px WebP, and the next pair is fetched before any vote.
        upcoming = browser.execute_script("return JSON.parse(document.getElementById('rank').dataset.upcoming)")
        shown = [browser.find_element(By.ID, side).get_attribute("src") for side in ("left-img", "right-img")]
        assert all(re.search(r"/img/pool/\d+/768/[0-9a-f]{10}\.webp$", src) for src in shown), shown
        wait.until(lambda d: {upcoming["left"], upcoming["right"]} <= set(d.execute_script(loaded)))
        # 2. A vote shows that preloaded pair at once and preloads the one after it.
        browser.find_element(By.TAG_NAME, "body").send_keys("1")
        wait.until(lambda d: d.find_element(By.ID, "pair").get_attribute("data-votes") == "1")
        assert browser.find_element(By.ID, "pair").get_attribute("data-pair") == str(upcoming["id"])
        assert browser.find_element(By.ID, "left-img").get_attribute("src").endswith(upcoming["left"])
        after = browser.execute_script("return JSON.parse(document.getElementById('rank').dataset.upcoming)")
        assert after["id"] == upcoming["id"]  # the page's first one; the next comes with the vote's answer
        screenshot(browser, "12-rank-preloaded")
        # 3. Explore: 384-px WebP tiles, lazy, with 768 for sharp screens; never the PNG.
        browser.get(f"{base_url}/explore")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".tile img")) == 8)
        tiles = browser.find_elements(By.CSS_SELECTOR, ".tile img")
        assert all(t.get_attribute("loading") == "lazy" for t in tiles)
        assert all(re.search(r"/img/\d+/384/[0-9a-f]{10}\.webp$", t.get_attribute("src")) for t in tiles)
        assert all("/768/" in t.get_attribute("srcset") for t in tiles)
        wait.until(lambda d: d.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
        assert not [p for p in browser.execute_script(loaded) if re.fullmatch(r"/img/\d+", p)]
        screenshot(browser, "13-explore-thumbnails")
        # 4. The image page: the 768 picture, the original and a download beside it.
        tiles[0].click()
        wait.until(lambda d: "/image/" in d.current_url)
        main = browser.find_element(By.ID, "main-image").get_attribute("src")
        assert re.search(r"/768/[0-9a-f]{10}\.webp$", main), main
        image_id = browser.current_url.rsplit("/", 1)[1]
        assert browser.find_element(By.ID, "original").get_attribute("href").endswith(f"/img/{image_id}")
        assert browser.find_element(By.ID, "download").get_attribute("href").endswith(f"/img/{image_id}?download=1")
        screenshot(browser, "14-image-links")

    await asyncio.to_thread(in_the_browser)
