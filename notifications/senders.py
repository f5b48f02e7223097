"""Where composed email goes: an SMTP relay when one is configured, otherwise a local Maildir.

A sender either delivers a message or raises `TemporaryFailure` (try again later: the relay is
down, slow, or says 4xx) or `PermanentFailure` (the relay refused this message or recipient with
5xx). Error texts end up in the outbox's `last_error`, which staff read: they never carry the
relay's password or the message's body.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

RELAY_SETTING = "CONCERNS_SMTP_RELAY_URL"
SMTP_TIMEOUT_SECONDS = 30.0


class TemporaryFailure(Exception):
    """Not delivered this time; the same message may well go through later."""


class PermanentFailure(Exception):
    """The relay refused this message or its recipient (5xx): sending it again will not help."""


class Sender(Protocol):
    def send(self, message: EmailMessage, *, key: str) -> None:
        """Deliver one message; `key` names it (the outbox id) for senders that dedupe."""
        ...


class Security(StrEnum):
    PLAIN = "smtp"
    STARTTLS = "smtp+starttls"
    TLS = "smtps"


DEFAULT_PORTS = {Security.PLAIN: 25, Security.STARTTLS: 587, Security.TLS: 465}
# 5xx replies about our session, not the message: authentication or TLS required (530), a
# mechanism too weak (534), bad credentials (535), encryption required (538). The operator can fix
# these, so the message waits rather than being given up.
SESSION_REFUSALS = frozenset({530, 534, 535, 538})


@dataclass(frozen=True)
class SmtpRelaySender:
    """Sends through an SMTP relay, one connection per message, verifying its TLS certificate."""

    host: str
    port: int
    security: Security
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: Path | None = None
    timeout: float = SMTP_TIMEOUT_SECONDS

    @classmethod
    def from_url(cls, url: str) -> SmtpRelaySender:
        """Read smtp://host:port, smtp+starttls://user:password@host:587 or smtps://...:465."""
        # Error messages never repeat the URL or its parts: it may hold the relay's password.
        parts = urlsplit(url.strip())
        try:
            security = Security(parts.scheme.lower())
        except ValueError:
            raise _bad_url("the scheme must be smtp://, smtp+starttls:// or smtps://") from None
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            raise _bad_url(
                "the port is not a number (percent-encode '/', '#', '?' and '@' "
                "in the user name and password)"
            ) from None
        if not host:
            raise _bad_url("it names no host")
        if parts.path not in ("", "/") or parts.fragment:
            raise _bad_url("it must be scheme://[user:password@]host[:port][?cafile=PATH]")
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        if (username is None) != (password is None) or username == "":
            raise _bad_url("give both a user name and a password, or neither")
        if not ((username or "") + (password or "")).isascii():
            # SMTP AUTH (smtplib) sends them as ASCII: the relay could never be signed in to.
            raise _bad_url("the user name and password must be ASCII characters")
        if password is not None and security is Security.PLAIN:
            raise _bad_url("a password is only sent over TLS: use smtp+starttls:// or smtps://")
        cafile: Path | None = None
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name != "cafile":
                raise _bad_url(f"unknown option {name!r}; the only option is cafile")
            if security is Security.PLAIN:
                raise _bad_url("cafile needs smtp+starttls:// or smtps://")
            cafile = Path(value)
        sender = cls(
            host=host,
            port=port or DEFAULT_PORTS[security],
            security=security,
            username=username,
            password=password,
            cafile=cafile,
        )
        if security is not Security.PLAIN:
            try:
                sender.tls_context  # noqa: B018 - load the CA file now, to fail at start-up
            except (OSError, ssl.SSLError) as error:
                raise _bad_url(f"cannot load cafile {cafile}: {error}") from None
        return sender

    @cached_property
    def tls_context(self) -> ssl.SSLContext:
        """Verifies the relay's certificate and name: the system's CAs, or only the given one."""
        if self.cafile is not None:
            return ssl.create_default_context(cafile=str(self.cafile))
        return ssl.create_default_context()

    def send(self, message: EmailMessage, *, key: str) -> None:
        """Deliver one message to the relay; raises TemporaryFailure or PermanentFailure."""
        try:
            client = self._connect()
        except smtplib.SMTPNotSupportedError:
            refusal = "the relay offers no STARTTLS: not sending in plain text"
            raise TemporaryFailure(refusal) from None
        except ssl.SSLError as error:
            raise TemporaryFailure(f"TLS with the relay failed: {error}") from None
        except (smtplib.SMTPException, OSError) as error:
            raise TemporaryFailure(self._redact(f"cannot reach the relay: {error}")) from None
        try:
            self._deliver(client, message)
        except BaseException:
            client.close()
            raise
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            # Delivered already: a failed goodbye must not turn into a second copy.
            client.close()

    def _connect(self) -> smtplib.SMTP:
        if self.security is Security.TLS:
            return smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=self.tls_context
            )
        client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security is Security.STARTTLS:
            try:
                client.ehlo()
                # Raises when the relay offers no STARTTLS: we never fall back to plain text.
                client.starttls(context=self.tls_context)
                client.ehlo()
            except BaseException:
                client.close()
                raise
        return client

    def _deliver(self, client: smtplib.SMTP, message: EmailMessage) -> None:
        try:
            if self.username is not None and self.password is not None:
                client.login(self.username, self.password)
            client.send_message(message)
        except smtplib.SMTPAuthenticationError as error:
            # The relay refuses our account, not this message (see SESSION_REFUSALS).
            refusal = f"relay refused the login: {_reply(error)}"
            raise TemporaryFailure(self._redact(refusal)) from None
        except smtplib.SMTPRecipientsRefused as error:
            replies = list(error.recipients.values())
            text = "; ".join(f"{code} {_decode(reply)}" for code, reply in replies)
            permanent = any(_is_permanent(code) for code, _ in replies)
            raise self._failure(permanent, f"relay refused the recipient: {text}") from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as error:
            what = "sender" if isinstance(error, smtplib.SMTPSenderRefused) else "message"
            permanent = _is_permanent(error.smtp_code)
            raise self._failure(permanent, f"relay refused the {what}: {_reply(error)}") from None
        except smtplib.SMTPResponseException as error:
            raise TemporaryFailure(self._redact(f"relay answered {_reply(error)}")) from None
        except ssl.SSLError as error:
            raise TemporaryFailure(f"TLS with the relay failed: {error}") from None
        except (smtplib.SMTPException, OSError) as error:
            failure = f"sending through the relay failed: {error}"
            raise TemporaryFailure(self._redact(failure)) from None

    def _failure(self, permanent: bool, text: str) -> Exception:
        text = self._redact(text)
        return PermanentFailure(text) if permanent else TemporaryFailure(text)

    def _redact(self, text: str) -> str:
        """The text without the password, plain or as AUTH PLAIN/LOGIN would have encoded it."""
        if not self.password:
            return text
        secrets = [self.password, _b64(self.password)]
        if self.username is not None:
            secrets.append(_b64(f"\0{self.username}\0{self.password}"))
        for secret in secrets:
            text = text.replace(secret, "***")
        return text


def _is_permanent(code: int) -> bool:
    return 500 <= code < 600 and code not in SESSION_REFUSALS


def _reply(error: smtplib.SMTPResponseException) -> str:
    return f"{error.smtp_code} {_decode(error.smtp_error)}"


def _decode(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return " ".join(text.split())


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _bad_url(reason: str) -> ValueError:
    return ValueError(f"{RELAY_SETTING} is not usable: {reason}")


# --- the local Maildir -------------------------------------------------------------------------

_SAFE_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class MaildirSender:
    """Writes each message into a Maildir once per key: a resend after a crash writes nothing."""

    path: Path

    def send(self, message: EmailMessage, *, key: str) -> None:
        """Deliver into new/ unless this key's file is already in new/ or cur/."""
        name = maildir_name(key)
        try:
            for folder in ("tmp", "new", "cur"):
                (self.path / folder).mkdir(mode=0o700, parents=True, exist_ok=True)
            if self._delivered(name):
                return
            data = message.as_bytes(policy=message.policy.clone(linesep="\n"))
            temporary = self.path / "tmp" / f"{name}.{os.getpid()}"
            # Mail about concerns is confidential: readable by the service's user only.
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            # The rename is atomic: a reader sees the whole message in new/ or nothing.
            os.rename(temporary, self.path / "new" / name)
            _fsync_directory(self.path / "new")
        except OSError as error:
            raise TemporaryFailure(f"cannot write to the outbox folder: {error.strerror}") from None

    def _delivered(self, name: str) -> bool:
        if (self.path / "new" / name).exists():
            return True
        # A mail client that has read a message moves it to cur/ and appends ":2,<flags>".
        with os.scandir(self.path / "cur") as entries:
            return any(e.name == name or e.name.startswith(f"{name}:") for e in entries)


def maildir_name(key: str) -> str:
    """A file name that is the same for the same key, and safe whatever the key holds."""
    if _SAFE_KEY.fullmatch(key):
        return f"outbox-{key}"
    return f"outbox-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}"


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sender_from_settings(relay_url: str | None, outbox_dir: Path) -> Sender:
    """The relay when CONCERNS_SMTP_RELAY_URL is set, otherwise the Maildir CONCERNS_OUTBOX_DIR."""
    if relay_url and relay_url.strip():
        return SmtpRelaySender.from_url(relay_url)
    return MaildirSender(outbox_dir)
