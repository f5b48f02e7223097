"""Staff accounts and their credentials: API tokens, browser sessions and sign-in links.

Every secret handed out (a token, a session cookie, a sign-in nonce) is random and long, so it is
kept as its SHA-256: the database never holds anything that would let someone sign in.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from storage.tables import (
    AccessRecord,
    Contact,
    SignInLink,
    StaffMember,
    StaffSession,
    StaffToken,
    id_of,
)

TOKEN_PREFIX = "lc_"


def digest(secret: str) -> str:
    """What the database keeps of a token, cookie or nonce."""
    return hashlib.sha256(secret.encode()).hexdigest()


def normalise_email(email: str) -> str:
    return email.strip().lower()


# --- accounts ---------------------------------------------------------------------------------


def staff_by_email(session: Session, email: str) -> StaffMember | None:
    return session.exec(
        select(StaffMember).where(StaffMember.email == normalise_email(email))
    ).first()


def staff_by_id(session: Session, staff_id: int) -> StaffMember | None:
    return session.get(StaffMember, staff_id)


def contacts_with_email(session: Session, email: str) -> Sequence[Contact]:
    """The active directory contacts a person's email belongs to (one person may hold several
    roles or places)."""
    return session.exec(
        select(Contact)
        .where(func.lower(Contact.email) == normalise_email(email), col(Contact.active))
        .order_by(col(Contact.id))
    ).all()


def save_staff(
    session: Session,
    *,
    email: str,
    role: str,
    scope: str | None,
    follows_directory: bool,
    now: datetime,
) -> StaffMember:
    """Create the account, or give an existing one this role and scope."""
    member = staff_by_email(session, email)
    if member is None:
        member = StaffMember(email=normalise_email(email), role=role, created_at=now)
    member.role = role
    member.scope = scope
    member.follows_directory = follows_directory
    member.active = True
    session.add(member)
    session.flush()
    return member


# --- API tokens -------------------------------------------------------------------------------


def issue_token(session: Session, *, staff_id: int, now: datetime) -> str:
    """A new API token for the account: returned once, kept only as its hash."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(StaffToken(staff_id=staff_id, token_hash=digest(token), created_at=now))
    session.flush()
    return token


def staff_by_token(session: Session, token: str) -> StaffMember | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    return session.exec(
        select(StaffMember)
        .join(StaffToken, col(StaffToken.staff_id) == col(StaffMember.id))
        .where(
            StaffToken.token_hash == digest(token),
            col(StaffToken.revoked_at).is_(None),
            col(StaffMember.active),
        )
    ).first()


# --- browser sessions -------------------------------------------------------------------------


def open_session(session: Session, *, staff_id: int, now: datetime, lifetime: timedelta) -> str:
    """A new signed-in session; the value for the cookie is returned once."""
    value = secrets.token_urlsafe(32)
    session.add(
        StaffSession(
            staff_id=staff_id,
            session_hash=digest(value),
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        )
    )
    session.flush()
    return value


def staff_by_session(
    session: Session, value: str, *, now: datetime, idle: timedelta
) -> StaffMember | None:
    """The account a session cookie belongs to, while the session lasts; each use keeps an
    idle session alive (never past its absolute end)."""
    if not value or len(value) > 200:
        return None
    found = session.exec(
        select(StaffSession, StaffMember)
        .join(StaffMember, col(StaffMember.id) == col(StaffSession.staff_id))
        .where(StaffSession.session_hash == digest(value), col(StaffSession.ended_at).is_(None))
    ).first()
    if found is None:
        return None
    signed_in, member = found
    if not member.active or now >= signed_in.expires_at or now >= signed_in.last_seen_at + idle:
        return None
    signed_in.last_seen_at = now
    session.add(signed_in)
    return member


def end_session(session: Session, value: str, *, now: datetime) -> None:
    session.execute(
        update(StaffSession)
        .where(
            col(StaffSession.session_hash) == digest(value),
            col(StaffSession.ended_at).is_(None),
        )
        .values(ended_at=now)
    )


# --- sign-in links ----------------------------------------------------------------------------


def new_sign_in(session: Session, *, staff_id: int, now: datetime, lifetime: timedelta) -> str:
    """A nonce for a sign-in link (the link signs it too); kept only as its hash."""
    nonce = secrets.token_urlsafe(32)
    session.add(
        SignInLink(
            staff_id=staff_id, nonce_hash=digest(nonce), created_at=now, expires_at=now + lifetime
        )
    )
    session.flush()
    return nonce


def use_sign_in(session: Session, nonce: str, *, now: datetime) -> int | None:
    """The account a sign-in nonce is for, marking it used: it works once, before it expires.
    One UPDATE decides, so two clicks at once cannot both sign in."""
    if not nonce or len(nonce) > 200:
        return None
    row = session.execute(
        update(SignInLink)
        .where(
            col(SignInLink.nonce_hash) == digest(nonce),
            col(SignInLink.used_at).is_(None),
            col(SignInLink.expires_at) > now,
        )
        .values(used_at=now)
        .returning(col(SignInLink.staff_id))
    ).first()
    return int(row[0]) if row else None


# --- the access audit -------------------------------------------------------------------------


def record_access(
    session: Session,
    *,
    kind: str,
    staff: StaffMember | None,
    channel: str,
    now: datetime,
    reference: str | None = None,
    detail: dict[str, object] | None = None,
) -> None:
    session.add(
        AccessRecord(
            at=now,
            staff_id=id_of(staff) if staff is not None else None,
            kind=kind,
            reference=reference,
            channel=channel,
            detail=dict(detail or {}),
        )
    )


def access_records_of(session: Session, reference: str) -> Sequence[AccessRecord]:
    return session.exec(
        select(AccessRecord)
        .where(AccessRecord.reference == reference)
        .order_by(col(AccessRecord.at), col(AccessRecord.id))
    ).all()
