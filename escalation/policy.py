"""The configured policy every use case works under: the calendar, deadlines and addresses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from escalation.links import StatusLinks
from routing.calendar import WorkingCalendar
from routing.deadlines import DeadlinePolicy


@dataclass(frozen=True)
class Policy:
    """Built once by `app.bootstrap` from settings; tests build their own."""

    calendar: WorkingCalendar
    deadlines: DeadlinePolicy = field(default_factory=DeadlinePolicy)
    hotspot_window_days: int = 90
    public_url: str = "http://127.0.0.1:8000"
    reply_address: str = "escalating-concerns@localhost"
    # Signed links to the learner's status page, put in every learner email (None: no links).
    status_links: StatusLinks | None = None
    # Slack is set up: contacts with a Slack user id are also told in Slack, and learners who
    # raised a concern in Slack hear back there.
    slack_enabled: bool = False
    # Chat messages carry the concern's one-line summary (default: no text of the concern).
    chat_summary: bool = False
    # Teams is set up: contacts with a Teams (Entra object) id are also told in Teams, once the
    # bot has a conversation with them; learners who raised a concern in Teams hear back there.
    teams_enabled: bool = False
    # Teams cards carry the concern's one-line summary (default: no text of the concern).
    teams_summary: bool = False

    def staff_url(self, reference: str) -> str:
        return f"{self.public_url.rstrip('/')}/staff/concerns/{reference}"

    def kept_aside_url(self) -> str:
        """The staff page of mail kept aside (app.staff.kept_aside)."""
        return f"{self.public_url.rstrip('/')}/staff/kept-aside"

    def status_url(self, reference: str, now: datetime, *, link_version: int = 0) -> str | None:
        """A signed link to the learner's status page, or None when links are not set up."""
        if self.status_links is None:
            return None
        return self.status_links.url_for(reference, now, version=link_version)
