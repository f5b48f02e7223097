"""The configured policy every use case works under: the calendar, deadlines and addresses."""

from __future__ import annotations

from dataclasses import dataclass, field

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

    def staff_url(self, reference: str) -> str:
        return f"{self.public_url.rstrip('/')}/staff/concerns/{reference}"
