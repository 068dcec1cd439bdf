"""python -m bot: run the Discord bot and its local GPU workers; `python -m bot backup PATH` and
`restore PATH` copy its data dir out and back (bot/backup.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

# Taste refits are tiny (k≈64) matrices: threaded BLAS only adds latency in the bot.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pydantic import ValidationError

from bot.config import TOKEN_HELP, Settings


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        fields = {str(e["loc"][0]) for e in error.errors() if e.get("loc")}
        if "DISCORD_TOKEN" in fields or "discord_token" in fields:
            print(TOKEN_HELP, file=sys.stderr)
        else:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            print(f"Invalid settings: {problems}", file=sys.stderr)
        raise SystemExit(2) from None


async def run(settings: Settings) -> None:
    from bot.app import create_bot
    from bot.resources import open_resources

    async with open_resources(settings) as resources, create_bot(settings, resources) as bot:
        await bot.start(settings.discord_token.get_secret_value())


def main() -> None:
    if sys.argv[1:2] in (["backup"], ["restore"]):  # python -m bot backup|restore PATH: no token needed
        from bot import backup

        raise SystemExit(backup.main(sys.argv[1:]))
    settings = load_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("discord.gateway").setLevel(logging.WARNING)
    import aiohttp
    import discord

    from bot.backup import DataDirBusy
    from engine.presets import PresetFileError

    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        pass
    except DataDirBusy as error:  # a restore is under way
        print(error, file=sys.stderr)
        raise SystemExit(2) from None
    except PresetFileError as error:  # the owner's presets.toml: each problem on its own line
        print(f"Invalid model presets:\n{error}", file=sys.stderr)
        raise SystemExit(2) from None
    except discord.LoginFailure:
        print("Discord rejected DISCORD_TOKEN: reset the bot token in the developer portal and put the new one in .env.", file=sys.stderr)
        raise SystemExit(2) from None
    except aiohttp.ClientConnectionError as error:
        print(f"Could not reach Discord ({error}); check this machine's network and try again.", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
