"""Slack for learners: raising a concern (slash command, shortcut, DM), following it up."""

from __future__ import annotations

from bot.slack_app import SlackBot


def register(bot: SlackBot) -> None:
    """Register the learner listeners on the bot's Bolt app."""
