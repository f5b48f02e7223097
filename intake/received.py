"""The web form's two steps: take a learner's submission, then raise it.

Taking it is what the learner waits for: the submission is committed as they sent it, under the
reference they are then shown (and, if anonymous, with their one-time code's hash). Raising it is
`raise_concern`, the same as every channel's: triage, routing, the audit trail and every message,
in one transaction that also deletes the stored submission. `concerns serve` raises submissions
as soon as they are taken (the form wakes its intake tick); a status look-up of a reference still
waiting raises it first, so the learner never sees a concern half there. A failure is retried,
never dropped: the learner was told we have it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import TypeAdapter
from sqlalchemy.engine import Engine

from escalation.policy import Policy
from intake.follow_up import hash_code
from intake.service import new_follow_up_code, raise_concern, reference_for
from intake.submission import Channel, NewConcern
from routing.model import Confidentiality
from routing.pathways import starting_pathway
from storage import submissions
from storage.db import transaction

log = logging.getLogger(__name__)

_SUBMISSION = TypeAdapter(NewConcern)


@dataclass(frozen=True)
class Receipt:
    """What the learner is shown once their submission is stored."""

    reference: str
    code: str | None  # anonymous concerns only: shown once, stored only as an Argon2 hash
    pathway: int  # where the concern starts, from the learner's own answers
    sent_before: bool = False  # the same form was sent lately: this is that sending's receipt


@dataclass(frozen=True)
class SameForm:
    """What makes two sendings of the web form the same one (see intake.web.form): a second
    sending since `remembered_since`, on whichever instance, gets the first one's receipt.

    `key_hash` names the form; `seal_key` (32 bytes) is made from what only the learner's browser
    holds, and seals an anonymous learner's code while it is remembered (storage.tables.SentForm).
    """

    key_hash: str
    seal_key: bytes
    remembered_since: datetime

    def seal(self, code: str) -> bytes:
        return seal(self.seal_key, code, bound_to=self.key_hash)

    def unseal(self, sealed: bytes) -> str:
        """The code sealed by `seal` (cryptography's InvalidTag if it was not sealed so)."""
        return unseal(self.seal_key, sealed, bound_to=self.key_hash)


def seal(key: bytes, text: str, *, bound_to: str) -> bytes:
    """`text` sealed under a 32-byte key (AES-GCM), opening only beside `bound_to`."""
    nonce = secrets.token_bytes(12)
    return nonce + AESGCM(key).encrypt(nonce, text.encode(), bound_to.encode())


def unseal(key: bytes, sealed: bytes, *, bound_to: str) -> str:
    """What `seal` sealed (cryptography's InvalidTag for another key or another `bound_to`)."""
    return AESGCM(key).decrypt(sealed[:12], sealed[12:], bound_to.encode()).decode()


@dataclass(frozen=True)
class RaisingReport:
    raised: int = 0
    failed: int = 0


def receive_concern(
    *,
    engine: Engine,
    concern: NewConcern,
    channel: Channel,
    now: datetime,
    policy: Policy,
    same_form: SameForm | None = None,
) -> Receipt:
    """Commit a validated submission under the year's next reference; raise it later. With
    `same_form`, a form sent lately is not stored again: its first sending's receipt is returned."""
    code = new_follow_up_code() if concern.confidentiality is Confidentiality.ANONYMOUS else None
    # Hashed before the transaction: Argon2 is deliberately slow and must not hold the lock.
    code_hash = hash_code(code) if code else None
    stored = submissions.store_submission(
        engine,
        submission=_SUBMISSION.dump_json(concern).decode(),
        channel=channel.value,
        code_hash=code_hash,
        year=now.astimezone(policy.calendar.timezone).year,
        reference_for=reference_for,
        now=now,
        sending=submissions.Sending(
            key_hash=same_form.key_hash,
            sealed_code=same_form.seal(code) if code else None,
            remembered_since=same_form.remembered_since,
        )
        if same_form
        else None,
    )
    if stored.sent_before and same_form is not None:
        # The code made above (and hashed, and sealed) goes unused: the first sending's is shown.
        code = same_form.unseal(stored.sealed_code) if stored.sealed_code else None
    start = starting_pathway(
        raised_before=concern.raised_before,
        about_pathway1_contact=concern.about_pathway1_contact,
        cannot_raise_locally=concern.cannot_raise_locally,
    )
    return Receipt(
        reference=stored.reference,
        code=code,
        pathway=int(start.pathway),
        sent_before=stored.sent_before,
    )


def raise_waiting(*, engine: Engine, policy: Policy, now: datetime, limit: int) -> RaisingReport:
    """Raise up to `limit` stored submissions whose turn has come, oldest first."""
    with transaction(engine) as session:
        waiting = submissions.waiting_ids(session, now=now, limit=limit)
    raised = failed = 0
    for submission_id in waiting:
        outcome = _raise_or_note(engine, policy, submission_id, now=now)
        raised += outcome is True
        failed += outcome is None
    return RaisingReport(raised=raised, failed=failed)


def raise_if_waiting(*, engine: Engine, policy: Policy, reference: str, now: datetime) -> bool:
    """Raise the submission stored under `reference` now, if it is still waiting (a status
    look-up comes straight after the confirmation, often before the intake tick has run).
    True when this call raised it."""
    with transaction(engine) as session:
        submission_id = submissions.waiting_id_for(session, reference)
    if submission_id is None:
        return False
    # Waiting for an instance already raising it: the look-up must find the concern.
    return _raise_or_note(engine, policy, submission_id, now=now, wait=True) is True


def raise_received(
    *, engine: Engine, policy: Policy, submission_id: int, wait: bool = False
) -> bool:
    """Raise one stored submission; False when it is gone (raised) or, unless `wait`, another
    instance has it."""
    with transaction(engine) as session:
        stored = submissions.claim(session, submission_id, wait=wait)
        if stored is None:
            return False
        # The counter's row is held as taking a number would hold it: see `raise_concern`.
        submissions.lock_reference_counter(session, stored.year)
        raise_concern(
            session=session,
            concern=_SUBMISSION.validate_json(stored.submission),
            channel=Channel(stored.channel),
            # The learner's clock started when they sent it, not when we got round to it.
            now=stored.received_at,
            policy=policy,
            code_hash=stored.code_hash,
            numbered=(stored.year, stored.number),
        )
        session.delete(stored)
    return True


def _raise_or_note(
    engine: Engine, policy: Policy, submission_id: int, *, now: datetime, wait: bool = False
) -> bool | None:
    """True raised, False not ours to raise, None failed (noted, to be tried again)."""
    try:
        return raise_received(engine=engine, policy=policy, submission_id=submission_id, wait=wait)
    except Exception as error:
        # The type only, in the log and the row: a database or validation error can quote the
        # learner's words, and staff see the row's error (app.staff.kept_aside).
        log.error("intake: a web submission could not be raised (%s)", type(error).__name__)
        try:
            submissions.record_failed_attempt(
                engine, submission_id=submission_id, error=type(error).__name__, now=now
            )
        except Exception as noting:
            log.error("intake: the failure could not be noted (%s)", type(noting).__name__)
        return None
