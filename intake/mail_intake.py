"""From a stored email to a concern: new concerns, learners' and contacts' replies, and loops.

The mailbox only stores (before its 250); this module reads what is stored, in its own
transactions, so a crash between the two loses nothing: the next tick picks the message up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine

from escalation.policy import Policy
from notifications.threading import MailThreading


@dataclass
class IntakeReport:
    processed: int = 0
    new_concerns: int = 0
    replies: int = 0
    acknowledgements: int = 0
    ignored: int = 0
    quarantined: int = 0
    failed: int = 0
    outcomes: list[str] = field(default_factory=list)


def process_pending(
    *,
    engine: Engine,
    policy: Policy,
    threading: MailThreading,
    now: datetime,
    acks_per_sender_per_day: int = 10,
    limit: int = 50,
) -> IntakeReport:
    """Turn stored emails into concerns and replies, each message in its own transaction."""
    return IntakeReport()
