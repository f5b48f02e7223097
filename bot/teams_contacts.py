"""Contacts in Teams: Acknowledge, Record feedback and Not mine on the notification cards."""

from __future__ import annotations

from bot.teams_app import TeamsBot


def register(bot: TeamsBot) -> None:
    del bot
