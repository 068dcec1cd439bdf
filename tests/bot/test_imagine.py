"""/imagine end to end through SimCord: what a member sees."""

from __future__ import annotations

import pytest

from tests.bot.conftest import acknowledge_user_errors, run_until


def buttons(message) -> list[str]:
    """Labels (or emoji) of a message's buttons, row by row."""
    found = []
    for row in message.components:
        for child in row.children:
            found.append(child.label or str(child.emoji))
    return found


@pytest.mark.parametrize("bot_overrides", [{"TASTEMAKER_WORKERS": "0"}])
async def test_second_member_sees_queue_position(simcord_env, world):
    _, channel, alice, bob = world
    first = await alice.slash(channel, "imagine", prompt="a lighthouse in a storm --ar 3:2 --seed 7")
    second = await bob.slash(channel, "imagine", prompt="a red fox in snow")

    assert not first.ephemeral
    assert "(Waiting to start) · position 1 in queue" in channel.history()[-2].content
    assert "a red fox in snow" in channel.last_message.content
    assert "(Waiting to start) · position 2 in queue" in channel.last_message.content
    assert bob.mention in channel.last_message.content


@pytest.mark.parametrize("bot_overrides", [{"TASTEMAKER_WORKERS": "0"}])
@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a cat --s 5000", "`--s 5000` is out of range"),
        ("a cat --ar 10:1", "--ar"),
        ("a cat --chaos lots", "--chaos"),
    ],
)
async def test_bad_parameters_get_an_ephemeral_error_and_queue_nothing(simcord_env, world, simcord_bot, prompt, expected):
    _, channel, alice, _ = world
    result = await alice.slash(channel, "imagine", prompt=prompt)

    assert result.ephemeral
    assert expected in result.response.content
    assert acknowledge_user_errors(simcord_env) == [result.response.content]
    assert channel.last_message is None
    async with simcord_bot.db.execute("SELECT COUNT(*) FROM jobs") as cur:
        assert (await cur.fetchone())[0] == 0
