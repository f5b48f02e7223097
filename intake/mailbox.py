"""The escalation mailbox: an SMTP server that commits every message before it answers 250.

A thin adapter over aiosmtpd (1.4.6): it checks the envelope (only our mailbox and its `+token`
variants, a bounded number of recipients), hands the raw bytes to a group-commit writer and
answers 250 only once they are committed; anything going wrong answers `451 4.3.0` so the sending
server tries again. Parsing and turning mail into concerns happen later (`intake.mail_intake`),
from what is stored, so a crash between the two loses nothing.

Limits and their replies: message size 552 (without the dots doubled for the transfer, as RFC
1870 counts), lines over RFC 5321's 998 characters 500 (aiosmtpd), too many recipients 452, an
unknown mailbox 550, a silent client 421, more connections than the cap 421, a session longer than
its limit (a client trickling bytes) 421. aiosmtpd >= 1.4.5 ends DATA only on <CRLF>.<CRLF>, which
closes SMTP smuggling through bare-LF or bare-CR dots. Any error inside a command (ours or
aiosmtpd's) answers 451 4.3.0 too, not aiosmtpd's "500 Error: ...".
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from functools import lru_cache
from typing import Any, AnyStr, Protocol

from aiosmtpd.smtp import SMTP, Envelope, Session

from intake.emails import header_message_id
from storage.inbox import Received

log = logging.getLogger(__name__)

REPLY_STORED = "250 2.0.0 OK: message stored"
REPLY_RECIPIENT_OK = "250 2.1.5 OK"
REPLY_TRY_LATER = "451 4.3.0 Requested action aborted: try again later"
REPLY_NO_SUCH_MAILBOX = "550 5.1.1 No such mailbox here"
REPLY_TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
REPLY_TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, try again later"
REPLY_TOO_MANY_FROM_CLIENT = "421 4.7.0 Too many connections from your address, try again later"
REPLY_TIMEOUT = "421 4.4.2 Timeout waiting for a command, closing the connection"
REPLY_SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
REPLY_SESSION_TOO_LONG = "421 4.4.2 Session too long, closing the connection"
REPLY_TOO_BIG = "552 5.3.4 Message too big"

# Why a delivery was refused, as counted for /metrics. The keys are fixed up front so a scrape
# can read the counts from another thread while the loop updates them.
REJECTION_REASONS = (
    "unknown_recipient",
    "too_many_recipients",
    "too_big",
    "line_too_long",
    "command_too_long",
    "too_many_connections",
    "too_many_from_client",
    "timeout",
    "session_too_long",
)
# Refusals aiosmtpd makes itself, recognised by the start of its reply.
_AIOSMTPD_REFUSALS = (
    ("552", "too_big"),
    ("500 Line too long", "line_too_long"),
    ("500 Command line too long", "command_too_long"),
)


class StoreReceived(Protocol):
    def __call__(self, received: Sequence[Received], /, *, now: datetime) -> None:
        """Commit these deliveries in one transaction; return only once they are durable."""
        ...


@dataclass(frozen=True)
class MailboxLimits:
    max_message_bytes: int = 10 * 1024 * 1024
    max_recipients: int = 20
    max_connections: int = 100
    # From one client address (an IPv6 client's /64): one sender cannot take every connection
    # and keep the others' mail out. Half the whole, as Postfix's default is: the mail for the
    # mailbox may all come through a few relays, each opening several connections at once.
    max_connections_per_client: int = 50
    timeout_seconds: float = 60.0
    # The whole of a session, however busy: the idle timer restarts on every command and on
    # every chunk of a message, so without this a byte now and then holds a connection for ever.
    # Ten minutes is 10 MiB at 17 KiB/s.
    max_session_seconds: float = 600.0
    # How long a delivery waits for its commit before the client is told to try again.
    commit_timeout_seconds: float = 30.0
    # A group commit takes whatever is waiting, up to this many messages and bytes.
    max_batch_messages: int = 100
    max_batch_bytes: int = 32 * 1024 * 1024


@dataclass
class MailboxCounters:
    """What the mailbox has answered since it started; updated on the loop, read by /metrics."""

    accepted: int = 0
    failed_451: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REJECTION_REASONS, 0))


def accepts_recipient(address: str, *, mailbox: str) -> bool:
    """Whether an envelope recipient is our mailbox or one of its `local+anything` variants."""
    local, at, domain = address.strip().rpartition("@")
    our_local, _, our_domain = mailbox.strip().rpartition("@")
    if not at or domain.lower() != our_domain.lower():
        return False
    local = local.lower()
    our_local = our_local.lower()
    return local == our_local or local.startswith(our_local + "+")


# --- the group-commit writer --------------------------------------------------------------------


@dataclass
class _Delivery:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[None]

    def settle(self, error: BaseException | None) -> None:
        """Tell the waiting session how its commit went (from the writer thread)."""
        # RuntimeError: the loop has closed, so nobody is waiting for the answer any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_settle, self.done, error)


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)


_STOP = object()


class GroupCommitWriter:
    """One thread that commits deliveries: all those waiting at the same moment in one go.

    The database never runs on the event loop, and concurrent deliveries share one commit
    (one fsync) instead of queueing for one each. If a shared commit fails, each delivery is
    retried on its own, so one bad message cannot make the others answer 451.
    """

    def __init__(
        self,
        store: StoreReceived,
        *,
        max_batch_messages: int,
        max_batch_bytes: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._max_messages = max_batch_messages
        self._max_bytes = max_batch_bytes
        self._clock = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._carry: _Delivery | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> None:
        """Start the writer thread."""
        # A daemon, so that a database that never answers cannot stop the process from exiting:
        # nothing waiting on it has been told 250.
        self._thread = threading.Thread(target=self._run, name="mailbox-writer", daemon=True)
        self._thread.start()

    def submit(
        self, *, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes
    ) -> asyncio.Future[None]:
        """Queue one delivery; the future completes once it is committed (call on the loop)."""
        if self._thread is None or self._stopping:
            raise RuntimeError("the mailbox writer is not running")
        loop = asyncio.get_running_loop()
        delivery = _Delivery(mail_from, rcpt_tos, raw, loop, loop.create_future())
        self._queue.put(delivery)
        return delivery.done

    def stop(self, *, timeout: float) -> bool:
        """Commit what is queued, then end the thread; False if it did not finish in time."""
        self._stopping = True
        if self._thread is None:
            return True
        self._queue.put(_STOP)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            batch, stop = self._next_batch()
            if batch:
                try:
                    self._commit(batch)
                except Exception as error:  # never let the thread die: sessions wait on it
                    log.error("mailbox writer: unexpected %s", type(error).__name__)
                    for delivery in batch:
                        delivery.settle(error)
            if stop:
                return

    def _next_batch(self) -> tuple[list[_Delivery], bool]:
        first = self._carry if self._carry is not None else self._queue.get()
        self._carry = None
        if first is _STOP:
            return [], True
        batch, size = [first], len(first.raw)
        while len(batch) < self._max_messages:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            if size + len(item.raw) > self._max_bytes:
                self._carry = item
                break
            batch.append(item)
            size += len(item.raw)
        return batch, False

    def _commit(self, batch: list[_Delivery]) -> None:
        ready: list[tuple[_Delivery, Received]] = []
        for delivery in batch:
            try:
                # Hashing and header reading run here, not on the loop: a 10 MiB message
                # takes milliseconds to hash.
                received = Received(
                    mail_from=delivery.mail_from,
                    rcpt_tos=delivery.rcpt_tos,
                    raw=delivery.raw,
                    message_id=header_message_id(delivery.raw),
                )
            except Exception as error:
                delivery.settle(error)
            else:
                ready.append((delivery, received))
        if not ready:
            return
        try:
            self._store([received for _, received in ready], now=self._clock())
        except Exception as error:
            if len(ready) == 1:
                ready[0][0].settle(error)
                return
            log.warning(
                "mailbox writer: a shared commit of %d deliveries failed (%s); "
                "committing each on its own",
                len(ready),
                type(error).__name__,
            )
            for delivery, received in ready:
                try:
                    self._store([received], now=self._clock())
                except Exception as single_error:
                    delivery.settle(single_error)
                else:
                    delivery.settle(None)
            return
        for delivery, _ in ready:
            delivery.settle(None)


def client_of(peername: Any) -> str:
    """Whose connection this is, for the per-client cap: the IPv4 address, or an IPv6 address's
    /64 (one machine usually has a whole /64 to choose addresses from); "" when unknown."""
    host = peername[0] if isinstance(peername, tuple) and peername else None
    if not isinstance(host, str):
        return ""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


# --- the SMTP adapter ---------------------------------------------------------------------------


class MailboxHandler:
    """aiosmtpd hooks: which recipients we take, and store-then-250 for the message."""

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        mailbox = self._mailbox
        if not accepts_recipient(address, mailbox=mailbox.address):
            mailbox.counters.rejected["unknown_recipient"] += 1
            return REPLY_NO_SUCH_MAILBOX
        if len(envelope.rcpt_tos) >= mailbox.limits.max_recipients:
            mailbox.counters.rejected["too_many_recipients"] += 1
            return REPLY_TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return REPLY_RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        mailbox = self._mailbox
        raw = envelope.original_content
        if raw is not None and len(raw) > mailbox.limits.max_message_bytes:
            return REPLY_TOO_BIG  # counted as aiosmtpd's own 552 is (MailboxSMTP.push)
        try:
            if raw is None:
                raise ValueError("no message content")
            mail_from = envelope.mail_from or ""
            # aiosmtpd reports the null sender of bounces as "<>"; the table stores it as "".
            if mail_from == "<>":
                mail_from = ""
            committed = mailbox.writer.submit(
                mail_from=mail_from, rcpt_tos=tuple(envelope.rcpt_tos), raw=raw
            )
            # Shielded: if the client goes away or we give up waiting, the commit still
            # completes, and a retried delivery is stored once (same Message-ID, same sender).
            await asyncio.wait_for(
                asyncio.shield(committed), timeout=mailbox.limits.commit_timeout_seconds
            )
        except Exception as error:
            mailbox.counters.failed_451 += 1
            # The type only: an error's text can quote the message or its addresses.
            log.error("mailbox: a delivery was not stored (%s); answered 451", type(error).__name__)
            return REPLY_TRY_LATER
        mailbox.counters.accepted += 1
        mailbox.notify_stored()
        return REPLY_STORED

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's own default answers "500 Error: (Type) message" and logs the client's
        # address with a traceback; an error of ours or of aiosmtpd's (it raises IndexError on
        # `VRFY "`) is a failure to try again later, and says nothing about what failed.
        log.error("mailbox: a command failed (%s); answered 451", type(error).__name__)
        return REPLY_TRY_LATER


@lru_cache(maxsize=1024)
def _envelope_address(arg: str) -> tuple[str, str] | None:
    """An SMTP command's address and what follows it, parsed as aiosmtpd parses them; None when
    the email package's parser refuses it."""
    try:
        if arg.lstrip().startswith("<"):
            angle, rest = get_angle_addr(arg)
            return str(angle.addr_spec), str(rest)
        spec, rest = get_addr_spec(arg)
        return str(spec.addr_spec), str(rest)
    except HeaderParseError:
        return None


class MailboxSMTP(SMTP):
    """aiosmtpd's SMTP session with a connection cap, an idle timeout that answers 421, and a
    clean goodbye when the service stops.

    aiosmtpd 1.4.6 only closes the socket on a timeout, and restarts its timer on each command:
    a large message on a slow link, or a slow commit, would be cut off mid-DATA. Here the timer
    restarts on every chunk received during DATA and waits while the message is being committed.
    A session as a whole ends after `max_session_seconds` whatever it is doing (a message being
    committed is answered first); a message cut off is never handed to the writer.
    """

    def __init__(self, handler: MailboxHandler, *, mailbox: Mailbox, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._mailbox = mailbox
        self.client = ""
        self._turned_away = False
        self.receiving_data = False
        self._committing = False
        self._session_limit: asyncio.TimerHandle | None = None
        self._over_time = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        mailbox = self._mailbox
        self.client = client_of(transport.get_extra_info("peername"))
        refusal = mailbox.refusal(self.client)
        if refusal is not None:
            self._turned_away = True
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(refusal.encode("ascii") + b"\r\n")
            transport.close()
            return
        mailbox.session_opened(self)
        super().connection_made(transport)
        if self._session_limit is None:
            self._session_limit = self.loop.call_later(
                mailbox.limits.max_session_seconds, self._session_over_time
            )

    def connection_lost(self, error: Exception | None) -> None:
        if self._turned_away:
            return
        if self._session_limit is not None:
            self._session_limit.cancel()
        try:
            super().connection_lost(error)
        finally:
            self._mailbox.session_closed(self)

    def _session_over_time(self) -> None:
        self._over_time = True
        if self._committing:
            return  # the message is being stored: it is answered first (smtp_DATA), then this
        self._end_over_time()

    def _end_over_time(self) -> None:
        transport = self.transport
        if transport is None:
            return
        self._mailbox.counters.rejected["session_too_long"] += 1
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(REPLY_SESSION_TOO_LONG.encode("ascii") + b"\r\n")
        # Closing cancels the session's task, and with it a message still being received.
        transport.close()

    def eof_received(self) -> bool | None:
        if self._turned_away:
            return False
        return super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self.receiving_data:
            self._reset_timeout()
        super().data_received(data)

    def _timeout_cb(self) -> None:
        if self._committing:
            # Our own commit is slow, not the client: handle_DATA bounds that wait itself.
            self._reset_timeout()
            return
        if self.transport is not None:
            self._mailbox.counters.rejected["timeout"] += 1
            assert isinstance(self.transport, asyncio.WriteTransport)
            self.transport.write(REPLY_TIMEOUT.encode("ascii") + b"\r\n")
        super()._timeout_cb()

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        if command != "DATA":
            return await super()._call_handler_hook(command, *args)
        self._committing = True
        try:
            return await super()._call_handler_hook(command, *args)
        finally:
            self._committing = False

    async def smtp_DATA(self, arg: str) -> None:
        self.receiving_data = True
        self._mailbox.deliveries_in_progress += 1
        # aiosmtpd counts the dots doubled for the transfer towards its limit; RFC 1870 does
        # not, so a message of the size the client declared (and MAIL FROM accepted) was refused
        # after its data. While the data arrives the limit leaves room for them (a line gains at
        # most one byte in three: ".\r\n" is sent as "..\r\n"), and handle_DATA checks the
        # message itself against the real limit.
        limit = self._mailbox.limits.max_message_bytes
        self.data_size_limit = limit + limit // 3 + 1
        try:
            await super().smtp_DATA(arg)
        finally:
            self.data_size_limit = limit
            self.receiving_data = False
            self._mailbox.deliveries_in_progress -= 1
            self._mailbox.last_delivery_at = self.loop.time()
        if self.transport is None:
            return
        if self._mailbox.closing:
            self.say_goodbye()
        elif self._over_time:
            self._end_over_time()
        else:
            self._reset_timeout()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """The address in a MAIL FROM or RCPT TO argument, and the rest, as aiosmtpd 1.4.6's own
        reads them (None, None: not an address). Its own defines a typing.Protocol class on
        every call, and parses the address with the email package's header parser: together
        about a fifth of the mailbox's time on the event loop. The parse is remembered
        (`_envelope_address`): every RCPT TO names the same mailbox."""
        if not arg:
            return "", ""
        parsed = _envelope_address(arg)
        if parsed is None:
            return None, None
        address, rest = parsed
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str) and status.startswith("5"):
            for prefix, reason in _AIOSMTPD_REFUSALS:
                if status.startswith(prefix):
                    self._mailbox.counters.rejected[reason] += 1
                    break
        await super().push(status)

    def say_goodbye(self) -> None:
        """Tell the client we are stopping (421: try again later) and close the connection."""
        transport = self.transport
        if transport is None:
            return
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(REPLY_SHUTTING_DOWN.encode("ascii") + b"\r\n")
        transport.close()


class Mailbox:
    """The SMTP server on the running event loop: start, close, wait for in-flight deliveries."""

    def __init__(
        self,
        *,
        address: str,
        store: StoreReceived,
        limits: MailboxLimits | None = None,
        on_stored: Callable[[], None] | None = None,
        hostname: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.address = address
        self.limits = limits or MailboxLimits()
        self.counters = MailboxCounters()
        self.on_stored = on_stored
        # Named once: aiosmtpd would otherwise look up the host's FQDN on every connection.
        self.hostname = hostname or address.rpartition("@")[2] or "localhost"
        self.writer = GroupCommitWriter(
            store,
            max_batch_messages=self.limits.max_batch_messages,
            max_batch_bytes=self.limits.max_batch_bytes,
            clock=clock,
        )
        self.sessions: set[MailboxSMTP] = set()
        self._per_client: Counter[str] = Counter()
        self.closing = False
        # Read by the service to let mail processing give way while mail is arriving.
        self.deliveries_in_progress = 0
        self.last_delivery_at = float("-inf")
        self._handler = MailboxHandler(self)
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._no_sessions = asyncio.Event()
        self._no_sessions.set()

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port (port 0: any free port; see `.port`). Raises OSError if taken."""
        loop = asyncio.get_running_loop()
        self.writer.start()
        try:
            self._server = await loop.create_server(self._new_session, host=host, port=port)
        except BaseException:
            self.writer.stop(timeout=1)
            raise
        self._port = int(self._server.sockets[0].getsockname()[1])

    @property
    def port(self) -> int:
        """The port the mailbox listens on."""
        assert self._port is not None, "the mailbox is not started"
        return self._port

    def close(self) -> None:
        """Stop accepting connections; idle sessions are told 421, those in DATA finish first."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            if not session.receiving_data:
                session.say_goodbye()

    async def wait_closed(self, timeout: float) -> bool:
        """Wait for sessions and commits in flight; False if some were cut off at `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        finished = True
        try:
            await asyncio.wait_for(self._no_sessions.wait(), timeout)
        except TimeoutError:
            finished = False
            for session in list(self.sessions):
                if isinstance(session.transport, asyncio.Transport):
                    session.transport.abort()
        remaining = max(0.1, deadline - loop.time())
        stopped = await asyncio.to_thread(self.writer.stop, timeout=remaining)
        return finished and stopped

    def receiving(self, *, within: float) -> bool:
        """Whether a delivery is in progress or one ended less than `within` seconds ago."""
        now = asyncio.get_running_loop().time()
        return self.deliveries_in_progress > 0 or now - self.last_delivery_at < within

    def notify_stored(self) -> None:
        """Run the on_stored hook; its failure never changes the answer to the client."""
        if self.on_stored is None:
            return
        try:
            self.on_stored()
        except Exception as error:
            log.error("mailbox: the on_stored hook failed (%s)", type(error).__name__)

    def refusal(self, client: str) -> str | None:
        """Why a new connection from this client is turned away (421), or None to serve it;
        a refusal for too many connections is counted."""
        if self.closing:
            return REPLY_SHUTTING_DOWN
        if len(self.sessions) >= self.limits.max_connections:
            self.counters.rejected["too_many_connections"] += 1
            return REPLY_TOO_MANY_CONNECTIONS
        if self._per_client[client] >= self.limits.max_connections_per_client:
            self.counters.rejected["too_many_from_client"] += 1
            return REPLY_TOO_MANY_FROM_CLIENT
        return None

    def session_opened(self, session: MailboxSMTP) -> None:
        self.sessions.add(session)
        self._per_client[session.client] += 1
        self._no_sessions.clear()

    def session_closed(self, session: MailboxSMTP) -> None:
        if session in self.sessions:
            self._per_client[session.client] -= 1
            if not self._per_client[session.client]:
                del self._per_client[session.client]
        self.sessions.discard(session)
        if not self.sessions:
            self._no_sessions.set()

    def _new_session(self) -> MailboxSMTP:
        return MailboxSMTP(
            self._handler,
            mailbox=self,
            data_size_limit=self.limits.max_message_bytes,
            timeout=self.limits.timeout_seconds,
            hostname=self.hostname,
            ident="concerns mailbox",
            loop=asyncio.get_running_loop(),
        )
