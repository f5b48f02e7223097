"""Read models of concerns for operators and staff: what `concerns show` and `list` print."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from escalation.notify import place_of
from storage import repositories
from storage.tables import Concern, id_of


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def concern_summary(session: Session, concern: Concern) -> dict[str, Any]:
    """One row of `concerns list`: no learner identity, no free text beyond the summary."""
    return {
        "reference": concern.reference,
        "status": concern.status,
        "pathway": concern.pathway,
        "risk_level": concern.risk_level,
        "rating": concern.rating,
        "place": place_of(session, concern),
        "summary": concern.summary,
        "confidentiality": concern.confidentiality,
        "created_at": _iso(concern.created_at),
        "feedback_due_at": _iso(concern.feedback_due_at),
        "overdue_at_dean": concern.overdue_at_dean_at is not None,
    }


def concern_details(session: Session, concern: Concern) -> dict[str, Any]:
    """Everything `concerns show` prints, without the learner's identity."""
    concern_id = id_of(concern)
    return {
        "reference": concern.reference,
        "status": concern.status,
        "pathway": concern.pathway,
        "confidentiality": concern.confidentiality,
        "channel": concern.channel,
        "learner_group": concern.learner_group,
        "place": place_of(session, concern),
        "summary": concern.summary,
        "description": concern.description,
        "patient_safety": concern.patient_safety,
        "hotspot": concern.hotspot,
        "risk": {
            "likelihood": concern.likelihood,
            "impact": concern.impact,
            "rating": concern.rating,
            "level": concern.risk_level,
            "reasons": list(concern.risk_reasons),
            "interventions": list(concern.interventions),
            "automatic": {"likelihood": concern.auto_likelihood, "impact": concern.auto_impact},
            "override_reason": concern.override_reason,
        },
        "standards": list(concern.standards),
        "created_at": _iso(concern.created_at),
        "level_reached_at": _iso(concern.level_reached_at),
        "ack_due_at": _iso(concern.ack_due_at),
        "feedback_due_at": _iso(concern.feedback_due_at),
        "acknowledged_at": _iso(concern.acknowledged_at),
        "feedback_at": _iso(concern.feedback_at),
        "overdue_at_dean_at": _iso(concern.overdue_at_dean_at),
        "closed_at": _iso(concern.closed_at),
        "closed_reason": concern.closed_reason,
        "next_due_at": _iso(concern.next_due_at),
        "contacts": [
            {"pathway": a.pathway, "role": a.role, "part": a.part, "name": c.name}
            for a, c in repositories.assignments_of(session, concern_id)
        ],
        "events": [
            {
                "at": event.at.isoformat(),
                "kind": event.kind,
                "actor": event.actor,
                "channel": event.channel,
                "pathway": event.pathway,
                **(
                    {"from_pathway": event.from_pathway, "to_pathway": event.to_pathway}
                    if event.kind == "escalated"
                    else {}
                ),
                "detail": event.detail,
            }
            for event in repositories.events_of(session, concern_id)
        ],
        "outbox": [
            {
                "recipient_role": message.recipient_role,
                "kind": message.kind,
                "channel": message.channel,
                "status": message.status,
                "send_after": message.send_after.isoformat(),
            }
            for message in repositories.outbox_of(session, concern_id)
        ],
    }
