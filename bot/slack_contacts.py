"""Slack for contacts: Acknowledge, Record feedback and Not mine on the messages they receive."""

from __future__ import annotations

from bot.slack_app import SlackBot


def register(bot: SlackBot) -> None:
    """Register the contact listeners on the bot's Bolt app."""
