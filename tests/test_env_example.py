""".env.example names every setting, each with the value the settings default to."""

from __future__ import annotations

import os
import re
from pathlib import Path

from bot.config import Settings

EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"
LINE = re.compile(r"^#?([A-Z][A-Z0-9_]+)=(.*)$")


def test_env_example_lists_every_setting_at_its_default(monkeypatch):
    for name in [n for n in os.environ if n.startswith("TASTEMAKER_") or n == "DISCORD_TOKEN"]:
        monkeypatch.delenv(name)
    written = dict(m.groups() for line in EXAMPLE.read_text().splitlines() if (m := LINE.match(line.strip())))
    aliases = {field.validation_alias: name for name, field in Settings.model_fields.items()}
    assert set(written) == set(aliases), "add or remove lines in .env.example"
    for alias, name in aliases.items():
        if alias == "DISCORD_TOKEN":  # a secret: no default, left empty to fill in
            assert written[alias] == ""
            continue
        read = getattr(Settings(_env_file=None, DISCORD_TOKEN="x", **{alias: written[alias]}), name)
        default = Settings.model_fields[name].default
        assert read == default, f".env.example says {alias}={written[alias]}, but the default is {default!r}"
