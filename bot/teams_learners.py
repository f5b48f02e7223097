"""Learners in Teams: a message to the bot offers the concern form as an Adaptive Card."""

from __future__ import annotations

from microsoft_agents.hosting.core import TurnContext

from bot.teams_app import TeamsBot


def register(bot: TeamsBot) -> None:
    bot.on_message(_on_message)


async def _on_message(bot: TeamsBot, turn_context: TurnContext) -> None:
    await turn_context.send_activity(
        "Hello. To raise a concern about your placement, use the form on the web for now."
    )
