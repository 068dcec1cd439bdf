"""Web companion fixtures: the real bot under SimCord with its web server on a
free loopback port, an HTTP client, and a headless Chromium (Selenium)."""

from __future__ import annotations

import re
import shutil
import socket
from pathlib import Path

import aiohttp
import pytest

from tests.bot.conftest import (  # noqa: F401  (fixtures)
    bot_overrides, bot_processes, data_dir, mod, rank_pool, settings, simcord_bot, with_rank_pool, world,
)

ARTIFACTS = Path(__file__).parent / "artifacts"  # screenshots (git-ignored)
UNLOCK_VOTES = 4
LINK = re.compile(r"(http://127\.0\.0\.1:\d+/login\?t=[\w.-]+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def web_overrides() -> dict[str, str]:
    return {}


@pytest.fixture
def bot_overrides(web_overrides: dict[str, str]) -> dict[str, str]:  # noqa: F811
    return {
        "TASTEMAKER_WEB_PORT": str(free_port()),
        "TASTEMAKER_UNLOCK_VOTES": str(UNLOCK_VOTES),
        **web_overrides,
    }


@pytest.fixture
def base_url(settings) -> str:  # noqa: F811
    return settings.web_base_url


async def login_link(member, channel) -> str:
    """What a member gets from /web: their private link."""
    result = await member.slash(channel, "web")
    assert result.ephemeral
    return LINK.search(result.response.content).group(1)


async def signed_in(member, channel) -> aiohttp.ClientSession:
    """An HTTP client signed in through the member's /web link, with the page's CSRF token."""
    link = await login_link(member, channel)
    client = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    token = link.split("t=", 1)[1]
    async with client.post(link.split("?", 1)[0], data={"t": token}) as answer:
        assert answer.status == 200 and answer.url.path == "/rank", answer.status
        page = await answer.text()
    client.csrf = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    return client


@pytest.fixture
def browser():
    """Headless Debian chromium through chromium-driver."""
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1440,1000",
                 "--force-device-scale-factor=1", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
