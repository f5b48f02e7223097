"""The database tables: the contact directory, concerns, their audit trail and the outbox.

Columns hold values of the enums in `routing.model` as plain strings. Every datetime is an aware
UTC `UTCDateTime`. Deadlines are columns, because the database is the source of truth for time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import UTCDateTime


def _at(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def id_of(row: SQLModel) -> int:
    """A row's id, which exists once the row is flushed; a missing flush fails here, loudly."""
    row_id = getattr(row, "id", None)
    if row_id is None:
        raise RuntimeError(f"{type(row).__name__} has no id yet: flush the session first")
    return int(row_id)


# --- the contact directory ------------------------------------------------------------------
# Rows are never deleted by a directory load: entries missing from a new file are marked
# inactive, so concerns keep their links to the people and places they were routed to.


class Region(SQLModel, table=True):
    __tablename__ = "regions"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, index=True)
    name: str
    escalation_mailbox: str
    active: bool = True


class Organisation(SQLModel, table=True):
    """A placement provider: an NHS trust, a GP practice, a private provider."""

    __tablename__ = "organisations"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, index=True)
    region_id: int = Field(foreign_key="regions.id", index=True)
    name: str
    kind: str = "nhs_trust"
    active: bool = True


class Site(SQLModel, table=True):
    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("organisation_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisations.id", index=True)
    key: str
    name: str
    address: str | None = None
    active: bool = True


class Department(SQLModel, table=True):
    __tablename__ = "departments"
    __table_args__ = (UniqueConstraint("organisation_id", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisations.id", index=True)
    site_id: int | None = Field(default=None, foreign_key="sites.id")
    key: str
    name: str
    active: bool = True


class ProgrammeBody(SQLModel, table=True):
    """A pathway-2 body: a foundation school, a specialty school or an education provider."""

    __tablename__ = "programme_bodies"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, index=True)
    region_id: int = Field(foreign_key="regions.id", index=True)
    kind: str  # Role.FOUNDATION_SCHOOL / SPECIALTY_SCHOOL / EDUCATION_PROVIDER
    name: str
    # Which learners it is responsible for: groups, specialties/programme words, placements.
    learner_groups: list[str] = _json_list()
    programmes: list[str] = _json_list()
    placement_organisations: list[str] = _json_list()
    active: bool = True


class Contact(SQLModel, table=True):
    """A person or a generic mailbox who can be told about a concern, with the role they hold."""

    __tablename__ = "contacts"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, index=True)
    role: str = Field(index=True)
    name: str
    email: str | None = None
    slack_user_id: str | None = Field(default=None, index=True)
    teams_user_id: str | None = Field(default=None, index=True)
    region_id: int = Field(foreign_key="regions.id", index=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisations.id", index=True)
    department_id: int | None = Field(default=None, foreign_key="departments.id", index=True)
    body_id: int | None = Field(default=None, foreign_key="programme_bodies.id", index=True)
    # Among several contacts of the same role and scope, the one told first.
    is_lead: bool = False
    active: bool = True


class DirectoryLoad(SQLModel, table=True):
    """One successful `directory load`: the product loads the default file when there is none."""

    __tablename__ = "directory_loads"

    id: int | None = Field(default=None, primary_key=True)
    loaded_at: datetime = _at(nullable=False)
    source: str
    sha256: str


# --- concerns -------------------------------------------------------------------------------


class Learner(SQLModel, table=True):
    """Who raised a concern. Never written for an anonymous concern."""

    __tablename__ = "learners"

    id: int | None = Field(default=None, primary_key=True)
    name: str | None = None
    email: str | None = Field(default=None, index=True)
    slack_user_id: str | None = Field(default=None, index=True)
    teams_user_id: str | None = Field(default=None, index=True)
    created_at: datetime = _at(nullable=False)


class ReferenceCounter(SQLModel, table=True):
    """The last reference number issued in a year, incremented under a row lock."""

    __tablename__ = "reference_counters"

    year: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    last: int = 0


# A concern's summary is one line of at most this many characters, however it was raised.
SUMMARY_MAX = 200


class Concern(SQLModel, table=True):
    __tablename__ = "concerns"
    __table_args__ = (
        UniqueConstraint("year", "number"),
        # The sweep reads only open concerns whose next step is due: its cost follows the number
        # due, not the number stored.
        Index("ix_concerns_due", "status", "next_due_at"),
        Index("ix_concerns_department_created", "department_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(unique=True, index=True)
    year: int
    number: int
    channel: str
    status: str
    pathway: int
    confidentiality: str
    learner_id: int | None = Field(default=None, foreign_key="learners.id", index=True)
    # The name the learner gave with this concern. The learner's record keeps the first name given
    # with their address ('Priya'); a confidential concern's later words are redacted with both
    # ('Priya Patel' given here), since either may be in them.
    learner_name: str | None = Field(default=None, sa_type=Text)
    learner_group: str | None = None
    programme: str | None = None
    # One-time code for anonymous follow-up, as an Argon2 hash; the code itself is never stored.
    code_hash: str | None = None

    region_id: int = Field(foreign_key="regions.id", index=True)
    organisation_id: int | None = Field(default=None, foreign_key="organisations.id")
    site_id: int | None = Field(default=None, foreign_key="sites.id")
    department_id: int | None = Field(default=None, foreign_key="departments.id")
    programme_body_id: int | None = Field(default=None, foreign_key="programme_bodies.id")
    # What the learner wrote about the place when it did not match the directory.
    placement_text: str | None = None

    summary: str = Field(sa_type=Text)
    description: str = Field(sa_type=Text)
    # A confidential concern's summary and description as the learner wrote them, when their name
    # or address was taken out of the two above (which everyone handling it reads): for triage,
    # and for those who may know who raised it (the dean and quality team). See migration 0017.
    summary_as_written: str | None = Field(default=None, sa_type=Text)
    description_as_written: str | None = Field(default=None, sa_type=Text)
    frequency: str
    harm: str
    raised_before: str
    about_pathway1_contact: bool = False
    cannot_raise_locally: bool = False
    prefers_speak_up_guardian: bool = False

    # Triage: the effective values, the automatic ones kept beside any staff override.
    likelihood: int
    impact: int
    rating: str
    risk_level: str
    risk_reasons: list[str] = _json_list()
    interventions: list[str] = _json_list()
    auto_likelihood: int
    auto_impact: int
    override_reason: str | None = None
    patient_safety: bool = False
    hotspot: bool = False
    standards: list[str] = _json_list()

    created_at: datetime = _at(nullable=False)
    # The clock of the current level (reset when the concern reaches a new level).
    level_reached_at: datetime = _at(nullable=False)
    ack_reminder_at: datetime = _at(nullable=False)
    ack_due_at: datetime = _at(nullable=False)
    feedback_reminder_at: datetime = _at(nullable=False)
    feedback_due_at: datetime = _at(nullable=False)
    acknowledged_at: datetime | None = _at()
    feedback_at: datetime | None = _at()
    close_after: datetime | None = _at()
    ack_reminder_sent_at: datetime | None = _at()
    ack_missed_at: datetime | None = _at()
    feedback_reminder_sent_at: datetime | None = _at()
    overdue_at_dean_at: datetime | None = _at()
    closed_at: datetime | None = _at()
    closed_reason: str | None = None
    # How often the concern was reopened: a reopened level is a new round of the same level, and
    # outbox keys name the round so its messages are queued again rather than taken as repeats.
    level_round: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # Status links name this version; one naming an older version no longer opens the concern.
    # Raised when the learner corrects their email address (actions.change_learner_email).
    link_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    # The earliest moment the sweep has something to do; None when nothing is left.
    next_due_at: datetime | None = _at()


class ConcernContact(SQLModel, table=True):
    """Who was told about a concern at a level, and as what (primary, secondary, copy, alert)."""

    __tablename__ = "concern_contacts"
    __table_args__ = (UniqueConstraint("concern_id", "pathway", "contact_id", "part"),)

    id: int | None = Field(default=None, primary_key=True)
    concern_id: int = Field(foreign_key="concerns.id", index=True)
    pathway: int
    contact_id: int = Field(foreign_key="contacts.id", index=True)
    role: str
    part: str  # primary | secondary | copy | alert
    assigned_at: datetime = _at(nullable=False)


class Escalation(SQLModel, table=True):
    """A move up the ladder. Unique per (concern, level reached), so it can only happen once."""

    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("concern_id", "to_pathway"),)

    id: int | None = Field(default=None, primary_key=True)
    concern_id: int = Field(foreign_key="concerns.id", index=True)
    from_pathway: int
    to_pathway: int
    at: datetime = _at(nullable=False)
    reason: str


class Event(SQLModel, table=True):
    """The append-only audit trail: who did what, when, through which channel."""

    __tablename__ = "events"

    id: int | None = Field(default=None, primary_key=True)
    concern_id: int = Field(foreign_key="concerns.id", index=True)
    at: datetime = _at(nullable=False)
    kind: str
    actor: str
    channel: str
    pathway: int | None = None
    from_pathway: int | None = None
    to_pathway: int | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Removal(SQLModel, table=True):
    """A concern whose events retention is removing: the events guard (migration 0007) lets a
    DELETE of an event through only for these. Written and deleted in the one transaction that
    removes the concern, so the table is empty to everyone else. No foreign key: see 0007."""

    __tablename__ = "removals"

    concern_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})


# --- the outbox -------------------------------------------------------------------------------


class OutboxMessage(SQLModel, table=True):
    """A message to send, written in the same transaction as the change that causes it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "status", "send_after"),
        # Acknowledgements to one sender are rate-limited: counted by address and time.
        Index("ix_outbox_recipient_created", "recipient_address", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # For example "LC-2026-000123:escalated_in:p2:contact:17": the same step never queues twice.
    idempotency_key: str = Field(unique=True)
    concern_id: int | None = Field(default=None, foreign_key="concerns.id", index=True)
    # The concern's reference: every message about one concern is one thread for its recipient.
    reference: str | None = None
    channel: str  # email | slack | teams
    kind: str
    recipient_role: str
    recipient_contact_id: int | None = Field(default=None, foreign_key="contacts.id")
    recipient_address: str
    subject: str
    body_text: str = Field(sa_type=Text)
    body_html: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _at(nullable=False)
    # Not sent before this moment: routine messages wait for working hours.
    send_after: datetime = _at(nullable=False)
    status: str = "pending"  # pending | sent | failed
    attempts: int = 0
    # Of those, the relay's permanent refusals (5xx): five of them and the message is given up.
    refusals: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    last_error: str | None = None
    sent_at: datetime | None = _at()
    # A dispatcher's claim: nobody else sends the row until the lease runs out.
    claim_token: str | None = None
    claimed_until: datetime | None = _at()
    # A chat message's own content (Slack Block Kit), beside the plain text it falls back to.
    payload: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Where a sent chat message lives ("<channel>:<ts>" in Slack), so it can be updated later.
    external_ref: str | None = None
    # Files sent with the message (the monthly report's CSV): [{filename, content_type, text}].
    attachments: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False, server_default="[]")
    )


# --- chat deliveries ---------------------------------------------------------------------------


class ChatDelivery(SQLModel, table=True):
    """A chat platform's event or button press already handled: Slack retries and double clicks
    are recorded once here (by event id, or action + message + user) and have one effect."""

    __tablename__ = "chat_deliveries"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    received_at: datetime = _at(nullable=False, index=True)


class TeamsConversation(SQLModel, table=True):
    """Where the bot can write to a Teams user: the conversation reference from their last
    activity (a message, or the app being installed for them). Proactive messages need it."""

    __tablename__ = "teams_conversations"

    id: int | None = Field(default=None, primary_key=True)
    # The user's Entra ID object id: what the directory and learners know a Teams user by.
    aad_object_id: str = Field(unique=True)
    # Teams' own id of the user in the bot's conversations ("29:...").
    teams_user_id: str = Field(index=True)
    # The SDK's ConversationReference, as JSON (service URL, conversation id, bot, user).
    reference: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = _at(nullable=False)


# --- digests and reports ----------------------------------------------------------------------


class DigestRun(SQLModel, table=True):
    """A digest or report sent for a region and period: unique, so it is sent once however many
    instances reach the scheduled moment."""

    __tablename__ = "digest_runs"
    __table_args__ = (UniqueConstraint("kind", "region_id", "period_start"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str  # daily | weekly | monthly
    region_id: int = Field(foreign_key="regions.id", index=True)
    period_start: datetime = _at(nullable=False)
    period_end: datetime = _at(nullable=False)
    created_at: datetime = _at(nullable=False)
    # How many messages were queued (0: the daily digest had no content and sends nothing).
    messages: int = 0


# --- the mailbox ------------------------------------------------------------------------------


class InboundMessage(SQLModel, table=True):
    """An email exactly as received, committed before the SMTP 250; processed afterwards.

    The raw bytes are never altered: attachments stay inside them, recorded but never opened.
    """

    __tablename__ = "inbound_messages"
    __table_args__ = (
        Index("ix_inbound_pending", "status", "received_at"),
        # Copies of one email that came by different routes are found by their Message-ID.
        Index("ix_inbound_message_id", "message_id"),
        # The email that raised a concern, answered by every email to its learner, is read from
        # this index alone (storage.outbox._raising_emails), never from the row with its raw bytes.
        Index("ix_inbound_concern_sender", "concern_id", "from_address", "message_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # The same Message-ID from the same envelope sender (or, without one, the same bytes) is
    # stored once however often a relay delivers it.
    dedupe_key: str = Field(unique=True)
    received_at: datetime = _at(nullable=False)
    mail_from: str  # the envelope sender; "" is the null sender of bounces
    rcpt_tos: list[str] = _json_list()
    message_id: str | None = None
    size: int
    sha256: str = Field(index=True)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    # received -> processed | ignored | quarantined (failed attempts retry, then quarantine);
    # quarantined (kept aside for staff) <-> dealt_with (someone on the staff side marked it, and
    # may put it back)
    status: str = "received"
    outcome: str | None = None
    from_address: str | None = None
    subject: str | None = None
    concern_id: int | None = Field(default=None, foreign_key="concerns.id", index=True)
    # Mail kept aside: the region it concerns, when that is known (None: every region's staff).
    region_id: int | None = Field(default=None, foreign_key="regions.id", index=True)
    attachments: list[dict[str, Any]] = _json_list()
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = _at()
    processed_at: datetime | None = _at()
    # Mail kept aside and then dealt with: who marked it (their email address) and when.
    dealt_with_by: str | None = None
    dealt_with_at: datetime | None = _at()


class ReceivedSubmission(SQLModel, table=True):
    """A concern from the web form exactly as the learner sent it, committed before they see its
    reference; raised (triaged, routed, its people told) just after, in a transaction that also
    deletes this row, so the learner's words live in one place once the concern exists.

    The reference is taken here, when the learner is given it; a failed attempt is retried with
    a growing wait and is never dropped.
    """

    __tablename__ = "received_submissions"

    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(unique=True)
    year: int
    number: int
    channel: str
    received_at: datetime = _at(nullable=False)
    # The validated submission (intake.submission.NewConcern) as JSON.
    submission: str = Field(sa_column=Column(Text, nullable=False))
    code_hash: str | None = None  # anonymous only: the one-time code's Argon2 hash
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = _at()


class SentForm(SQLModel, table=True):
    """A web form sent in the last two minutes, so that the same form sent again (a second press
    of Send, a browser resending), whichever instance it reaches, gets this sending's reference
    and one-time code instead of raising a second concern. Forgotten after the two minutes.

    `key_hash` is a hash of the form's one-time key, the session's CSRF token and every answer
    (intake.web.form). An anonymous learner's code is kept sealed (AES-GCM) under a key made from
    the form's one-time key and CSRF token, which only the learner's browser holds: the row alone
    reveals nothing.
    """

    __tablename__ = "sent_forms"

    key_hash: str = Field(primary_key=True)
    reference: str
    sealed_code: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    sent_at: datetime = _at(nullable=False, index=True)


# --- staff ------------------------------------------------------------------------------------


class StaffMember(SQLModel, table=True):
    """Someone who signs in to the staff pages or calls the API. A directory contact becomes one
    on first sign-in, and their role and scope then follow the directory; `concerns staff add`
    gives a role and scope of its own."""

    __tablename__ = "staff"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True)  # lower case
    # A `routing.access.StaffRole`; ignored while `follows_directory` is set.
    role: str
    # The region key (dean, quality team) or programme body key (school lead) the role covers.
    scope: str | None = None
    follows_directory: bool = False
    created_at: datetime = _at(nullable=False)
    active: bool = True


class StaffToken(SQLModel, table=True):
    """An API bearer token, kept only as its SHA-256 (it is random, long and shown once)."""

    __tablename__ = "staff_tokens"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    token_hash: str = Field(unique=True)
    created_at: datetime = _at(nullable=False)
    revoked_at: datetime | None = _at()


class StaffSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random value, the table its SHA-256."""

    __tablename__ = "staff_sessions"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    session_hash: str = Field(unique=True)
    created_at: datetime = _at(nullable=False)
    last_seen_at: datetime = _at(nullable=False)
    # However active the session, it ends here; an idle one ends sooner.
    expires_at: datetime = _at(nullable=False)
    ended_at: datetime | None = _at()


class SignInLink(SQLModel, table=True):
    """A sign-in link sent by email: single use, short-lived; the table holds its nonce's
    SHA-256, and the link itself is signed as well."""

    __tablename__ = "sign_in_links"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", index=True)
    nonce_hash: str = Field(unique=True)
    created_at: datetime = _at(nullable=False)
    expires_at: datetime = _at(nullable=False)
    used_at: datetime | None = _at()


class AccessRecord(SQLModel, table=True):
    """The access audit: each view of a confidential learner's identity, each export, and each
    concern removed by retention. Not tied to the concern by a foreign key, so the record of a
    concern outlives the concern."""

    __tablename__ = "access_records"
    __table_args__ = (Index("ix_access_records_reference_at", "reference", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _at(nullable=False)
    staff_id: int | None = Field(default=None, foreign_key="staff.id", index=True)
    # identity_viewed | exported | retention_removed | retention_removed_mail | kept_aside_read |
    # kept_aside_dealt_with | kept_aside_put_back
    kind: str
    reference: str | None = None
    channel: str  # web | api | cli
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
