"""Starting the bot: layering and the missing-token message."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"torch", "torchvision", "diffusers", "transformers", "open_clip", "accelerate"}


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_file_under_bot_imports_torch_diffusers_or_open_clip():
    files = sorted((ROOT / "bot").rglob("*.py"))
    assert len(files) > 5
    offenders = {str(f.relative_to(ROOT)): imported_modules(f) & HEAVY for f in files if imported_modules(f) & HEAVY}
    assert offenders == {}


def test_importing_the_bot_and_what_it_imports_loads_no_torch():
    code = (
        "import sys, bot.app, bot.__main__\n"
        "from bot.app import EXTENSIONS\n"
        "import importlib\n"
        "[importlib.import_module(name) for name in EXTENSIONS]\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in %r)\n"
        "print(heavy)\n" % HEAVY
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_without_a_token_python_m_bot_prints_one_line_and_fails(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-m", "bot"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    lines = (out.stdout + out.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "DISCORD_TOKEN" in lines[0] and "discord.com/developers" in lines[0]
