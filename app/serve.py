"""`concerns serve`: the HTTP app, the SMTP mailbox and the scheduler's ticks on one event loop.

The scheduler (APScheduler 3.x, in-memory) is only a timer: every tick reads what is due from the
database, so a restart, or a second instance on the same PostgreSQL, simply catches up. Each tick
runs its work in a thread, never overlaps itself, and never takes the service down with it.

SIGTERM or SIGINT: stop accepting mail, let uvicorn finish its requests, let deliveries being
committed and ticks in progress finish (bounded), then exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from slack_bolt.adapter.socket_mode import SocketModeHandler
from sqlalchemy.engine import make_url

from app import bootstrap
from app.metrics import Metrics
from app.settings import Settings
from app.web import compile_pages, create_app
from bot.slack_app import SlackBot, SlackTokenRefused, build_slack_bot
from bot.teams_app import TeamsBot, build_teams_bot, production_auth
from bot.teams_contacts import CardPoster
from escalation.digest import send_due_digests
from escalation.sweep import sweep
from intake.mail_intake import process_pending
from intake.mailbox import Mailbox, MailboxLimits
from intake.received import raise_waiting
from intake.web import assets
from intake.web.form import SENT_REMEMBERED_SECONDS
from notifications.outbox import dispatch_due
from notifications.senders import Sender, SmtpRelaySender, sender_from_settings
from notifications.slack_dispatch import dispatch_client, dispatch_due_slack
from notifications.teams_dispatch import dispatch_due_teams
from notifications.threading import MailThreading
from storage import repositories, submissions
from storage.db import transaction
from storage.inbox import store_received
from storage.outbox import SqlOutboxStore

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 30.0
# Stored mail is processed as soon as it arrives (the mailbox wakes the tick); the timer only
# catches retries and mail stored by another instance.
INTAKE_INTERVAL_SECONDS = 5
# Chat deliveries (event ids, button presses) are kept to make a retry or a double click have
# one effect. Slack retries within the hour and Teams within minutes; after this long a
# delivery is never repeated, and a late press meets the action's own checks anyway.
KEEP_CHAT_DELIVERIES = timedelta(days=30)
HOUSEKEEPING_INTERVAL_SECONDS = 3600
# Forms sent are forgotten within a minute of their 2 minutes (intake.web.form).
SENT_FORMS_INTERVAL_SECONDS = 60
INTAKE_BATCH = 20
# Taking mail comes before processing it: while deliveries are arriving (one in progress, or the
# last ended less than MAIL_QUIET_SECONDS ago), intake waits, but never more than
# GIVE_WAY_MAX_SECONDS before a pass. Processing holds SQLite's single write lock and the GIL; a
# relay's deliveries should not queue behind it.
MAIL_QUIET_SECONDS = 0.2
GIVE_WAY_MAX_SECONDS = 5.0
DISPATCH_BATCH = 20
# A tick that keeps finding full batches yields to the others after this many passes.
MAX_PASSES_PER_RUN = 20
DEV_SECRET = "dev-only-change-me"
GIL_SWITCH_SECONDS = 0.0005
HTTP_BACKLOG = 2048  # uvicorn's own default


class CannotServe(Exception):
    """The service cannot start; the message says why and what to change."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PassResult:
    more_waiting: bool = False  # a full batch: run again straight away
    queued_mail: bool = False  # the outbox may have new rows: wake the dispatcher


class Tick:
    """One recurring job: runs its work in a thread, never overlapping itself, never raising."""

    def __init__(
        self,
        name: str,
        work: Callable[[datetime], PassResult],
        *,
        metrics: Metrics,
        then: Callable[[], None] | None = None,
        give_way: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self._work = work
        self._metrics = metrics
        self._then = then
        self._give_way = give_way
        self._running = False
        self._again = False
        self._stopping = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    async def run(self) -> None:
        """One run (from the scheduler or a wake-up); if already running, run again after."""
        if self._running or self._stopping:
            self._again = True
            return
        self._running = True
        self._idle.clear()
        try:
            for _ in range(MAX_PASSES_PER_RUN):
                await self._wait_for_way()
                if self._stopping:
                    break
                self._again = False
                result = await self._one_pass()
                if result.queued_mail and self._then is not None:
                    self._then()
                if self._stopping or not (result.more_waiting or self._again):
                    break
        finally:
            self._running = False
            self._idle.set()

    def wake(self) -> None:
        """Run as soon as possible (call on the loop)."""
        if self._stopping:
            return
        if self._running:
            self._again = True
            return
        task = asyncio.get_running_loop().create_task(self.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        """Start no new pass."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        """Whether the service is stopping: a long pass ends early where it can."""
        return self._stopping

    async def wait_idle(self) -> None:
        """Wait until the pass in progress, if any, has finished."""
        await self._idle.wait()

    async def _wait_for_way(self) -> None:
        """Wait while `give_way` asks, for GIVE_WAY_MAX_SECONDS at most."""
        if self._give_way is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GIVE_WAY_MAX_SECONDS
        while self._give_way() and loop.time() < deadline and not self._stopping:
            await asyncio.sleep(MAIL_QUIET_SECONDS / 4)

    async def _one_pass(self) -> PassResult:
        try:
            return await asyncio.to_thread(self._work, datetime.now(UTC))
        except Exception as error:
            # The type only: errors from the database or a relay can quote learners' words.
            log.error(
                "%s: the tick failed (%s); it runs again next time", self.name, type(error).__name__
            )
            self._metrics.record_tick_error(job=self.name)
            return PassResult()


class Arrivals:
    """When the last web form submission was taken: raising submissions waits while more are
    arriving, as it waits for the mailbox (call on the loop)."""

    def __init__(self) -> None:
        self._last = -float("inf")

    def note(self) -> None:
        self._last = asyncio.get_running_loop().time()

    def receiving(self, *, within: float) -> bool:
        return asyncio.get_running_loop().time() - self._last < within


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: the service stops all its parts together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(settings: Settings) -> int:
    """Run the service until SIGTERM or SIGINT; 0 after a clean stop."""
    _configure_logging()
    product = bootstrap.build(settings)
    try:
        sender = sender_from_settings(settings.relay_url(), settings.outbox_dir)
    except ValueError as error:
        raise CannotServe(str(error), status=2) from None
    try:
        # Read the NHS.UK frontend's files now: without them no learner page can be drawn.
        served_assets = assets.load_assets(settings.frontend_dir)
    except assets.MissingFrontend as error:
        raise CannotServe(str(error), status=1) from None
    bootstrap.prepare_database(product)
    slack = _slack_bot(product)
    teams = _teams_bot(product)
    # A thread that wants the interpreter waits up to one switch interval for it. At Python's
    # default 5 ms, the event loop (every SMTP session and web request) would wait about 5 ms
    # at each turn behind a tick's thread raising concerns; at 0.5 ms it waits under 1 ms.
    # It does not change throughput (bench/README.md, "A correction").
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    try:
        return asyncio.run(
            _serve(product, sender=sender, served_assets=served_assets, slack=slack, teams=teams)
        )
    finally:
        product.engine.dispose()


def _slack_bot(product: bootstrap.Product) -> SlackBot | None:
    """The Slack app when Slack is configured, else None. Only Slack's answer that the bot token
    is wrong stops the service; an unreachable Slack is logged and the service starts."""
    chat = product.chat
    if chat.slack_bot_token is None or not chat.slack_configured:
        return None
    secret = chat.slack_signing_secret
    try:
        return build_slack_bot(
            bot_token=chat.slack_bot_token.get_secret_value(),
            # None: Socket Mode only, and /slack/events answers 404.
            signing_secret=secret.get_secret_value() if secret is not None else None,
            api_url=chat.slack_api_url,
            engine=product.engine,
            policy=product.policy,
            share_summary=chat.slack_share_summary,
        )
    except SlackTokenRefused as refused:
        raise CannotServe(
            f"Slack did not accept SLACK_BOT_TOKEN ({refused.code}); fix it, "
            "or unset SLACK_BOT_TOKEN to run without Slack",
            status=2,
        ) from None
    except Exception as error:
        raise CannotServe(
            f"the Slack app could not be set up ({type(error).__name__}); check the SLACK_ "
            "settings, or unset SLACK_BOT_TOKEN to run without Slack",
            status=2,
        ) from None


def _teams_bot(product: bootstrap.Product) -> TeamsBot | None:
    """The Teams bot when Teams is configured (app id, password and tenant), else None."""
    chat = product.chat
    if chat.teams_app_id is None or chat.teams_app_password is None or chat.teams_tenant_id is None:
        return None
    return build_teams_bot(
        auth=production_auth(
            app_id=chat.teams_app_id,
            app_password=chat.teams_app_password.get_secret_value(),
            tenant_id=chat.teams_tenant_id,
        ),
        engine=product.engine,
        policy=product.policy,
    )


def socket_mode_handler(product: bootstrap.Product, bot: SlackBot) -> SocketModeHandler | None:
    """Socket Mode (for workspaces without a public URL) when SLACK_APP_TOKEN is set."""
    if product.chat.slack_app_token is None:
        return None
    return SocketModeHandler(
        bot.app,
        product.chat.slack_app_token.get_secret_value(),
        logger=logging.getLogger("slack_bolt.socket_mode"),
        web_client=bot.client,
    )


async def _serve(
    product: bootstrap.Product,
    *,
    sender: Sender,
    served_assets: dict[str, assets.Asset],
    slack: SlackBot | None = None,
    teams: TeamsBot | None = None,
) -> int:
    settings = product.settings
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    metrics = Metrics(engine=product.engine)
    mailbox = Mailbox(
        address=settings.mailbox_address,
        store=partial(store_received, product.engine),
        limits=MailboxLimits(
            max_message_bytes=settings.smtp_max_message_bytes,
            max_recipients=settings.smtp_max_recipients,
            max_connections=settings.smtp_max_connections,
            max_connections_per_client=settings.smtp_max_connections_per_client,
            timeout_seconds=settings.smtp_timeout_seconds,
        ),
    )
    metrics.watch_mailbox(mailbox.counters)
    web_arrivals = Arrivals()
    ticks = _ticks(
        product,
        sender=sender,
        metrics=metrics,
        mailbox=mailbox,
        web_arrivals=web_arrivals,
        teams=teams,
    )
    by_name = {tick.name: tick for tick in ticks}
    # Mail and web submissions become concerns as soon as they are stored.
    mailbox.on_stored = by_name["intake"].wake

    def web_received() -> None:
        web_arrivals.note()
        by_name["intake"].wake()

    app = create_app(
        product,
        metrics=metrics,
        served_assets=served_assets,
        slack=slack,
        teams=teams,
        on_received=web_received,
    )
    # Before listening: compiling takes about a second, which would otherwise fall on the
    # first people to open each page (and hold up mail arriving at the same moment).
    started = time.perf_counter()
    compiled = compile_pages(app)
    log.info(
        "pages ready: %d templates compiled in %.1f s", compiled, time.perf_counter() - started
    )
    http_socket = _listen(settings.http_host, settings.http_port, setting="CONCERNS_HTTP_PORT")
    try:
        await mailbox.start(settings.smtp_host, settings.smtp_port)
    except OSError as error:
        http_socket.close()
        raise _cannot_listen(
            "SMTP", settings.smtp_host, settings.smtp_port, "CONCERNS_SMTP_PORT", error
        ) from None
    http = _Uvicorn(
        uvicorn.Config(
            app,
            lifespan="on",
            log_level="info",
            # Our own access log (intake.web.security.AccessLog) names the route only: uvicorn's
            # would record client addresses and query strings (status links carry tokens).
            access_log=False,
            # The client address behind a reverse proxy, for the rate limits (never recorded).
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            timeout_graceful_shutdown=int(SHUTDOWN_GRACE_SECONDS),
        )
    )
    http_task = asyncio.create_task(http.serve(sockets=[http_socket]))
    intervals = {
        "sweep": settings.sweep_interval_seconds,
        "dispatch": settings.dispatch_interval_seconds,
        "slack_dispatch": settings.dispatch_interval_seconds,
        "teams_dispatch": settings.dispatch_interval_seconds,
        "intake": INTAKE_INTERVAL_SECONDS,
        # Digests are due at 07:00; checking as often as the sweep sends them within a tick
        # of it, and finding them already recorded costs one short read.
        "digest": settings.sweep_interval_seconds,
        "housekeeping": HOUSEKEEPING_INTERVAL_SECONDS,
        "sent_forms": SENT_FORMS_INTERVAL_SECONDS,
    }
    scheduler = _scheduler({tick: intervals[tick.name] for tick in ticks})
    socket_mode = socket_mode_handler(product, slack) if slack is not None else None
    if socket_mode is not None:
        try:
            # Opens the WebSocket from Slack's own threads; HTTP mode keeps working regardless.
            await asyncio.to_thread(socket_mode.connect)
        except Exception as error:
            log.error("Slack Socket Mode did not connect (%s)", type(error).__name__)

    while not http.started and not http_task.done():
        await asyncio.sleep(0.02)
    if http.started:
        settle_heap()
        _print_banner(
            settings, mailbox=mailbox, http_port=http_socket.getsockname()[1], sender=sender
        )
        await asyncio.wait(
            [asyncio.ensure_future(stopping.wait()), http_task], return_when=asyncio.FIRST_COMPLETED
        )
    status = 0
    if http_task.done():
        failure = None if http_task.cancelled() else http_task.exception()
        log.error(
            "the HTTP server stopped by itself (%s); stopping the service",
            f"{type(failure).__name__}: {failure}" if failure else "it returned",
            exc_info=failure,
        )
        status = 1
    log.info("stopping: no new mail or requests; finishing what is in progress")

    # Stop taking work, then wait (bounded) for what is in flight to finish.
    mailbox.close()
    http.should_exit = True
    scheduler.pause()
    for tick in ticks:
        tick.stop()
    if socket_mode is not None:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(socket_mode.close)
    finished = await _wait_all(
        [
            mailbox.wait_closed(SHUTDOWN_GRACE_SECONDS),
            _quietly(http_task),
            *(tick.wait_idle() for tick in ticks),
            # Slack's work after its acks (a learner's form being saved, say) is finished too.
            *([asyncio.to_thread(slack.close)] if slack is not None else []),
        ],
        timeout=SHUTDOWN_GRACE_SECONDS,
    )
    scheduler.shutdown(wait=False)
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(signum)
    if not finished:
        log.warning(
            "stopped before all work in progress had finished (%ss)", SHUTDOWN_GRACE_SECONDS
        )
    log.info("stopped")
    return status


def settle_heap() -> None:
    """Collect once, then keep everything alive now (modules, the app, its routes and templates)
    out of the collector's later passes.

    A full collection walks every object the process holds: at start that is about 200,000
    (SQLAlchemy, FastAPI, pydantic, the templates), and each full pass paused the event loop,
    every SMTP session and web request with it, for about 0.2 s on the development VM. Frozen,
    a full pass walks only what was made since (about 20 ms). What is frozen is never freed;
    it is what lives as long as the process anyway.
    """
    gc.collect()
    gc.freeze()


def _ticks(
    product: bootstrap.Product,
    *,
    sender: Sender,
    metrics: Metrics,
    mailbox: Mailbox,
    web_arrivals: Arrivals | None = None,
    teams: TeamsBot | None = None,
) -> tuple[Tick, ...]:
    """The sweep, outbox dispatch, email intake and digest ticks (all but dispatch wake it),
    the Slack and Teams dispatch ticks when they are configured (woken with the email
    dispatcher), and the housekeeping and sent-forms ticks that forget what is no longer needed.
    Call on the service's event loop: the Teams sends run on it."""
    settings, engine, policy = product.settings, product.engine, product.policy
    threading = MailThreading(
        settings.secret_key.get_secret_value().encode(),
        settings.mailbox_address,
        previous_secrets=tuple(secret.encode() for secret in settings.previous_secrets()),
    )
    outbox = SqlOutboxStore(engine)

    def sweep_pass(now: datetime) -> PassResult:
        report = sweep(engine=engine, now=now, policy=policy)
        metrics.record_sweep(report)
        return PassResult(queued_mail=bool(report.applied))

    def dispatch_pass(now: datetime) -> PassResult:
        report = dispatch_due(
            store=outbox,
            sender=sender,
            threading=threading,
            from_address=settings.mailbox_address,
            now=now,
            limit=DISPATCH_BATCH,
            stopping=lambda: dispatch.stopping,
        )
        metrics.record_dispatch(report)
        handled = report.sent + report.retried + report.failed
        return PassResult(more_waiting=handled >= DISPATCH_BATCH)

    def intake_pass(now: datetime) -> PassResult:
        # Web submissions first: their learners have just been shown a reference.
        raising = raise_waiting(engine=engine, policy=policy, now=now, limit=INTAKE_BATCH)
        metrics.record_web_raising(raising)
        report = process_pending(
            engine=engine,
            policy=policy,
            threading=threading,
            now=now,
            acks_per_sender_per_day=settings.acks_per_sender_per_day,
            concerns_per_sender_per_day=settings.email_concerns_per_sender_per_day,
            limit=INTAKE_BATCH,
        )
        metrics.record_intake(report)
        return PassResult(
            more_waiting=report.processed + report.failed >= INTAKE_BATCH
            or raising.raised + raising.failed >= INTAKE_BATCH,
            queued_mail=report.processed + raising.raised > 0,
        )

    def digest_pass(now: datetime) -> PassResult:
        report = send_due_digests(engine=engine, now=now, policy=policy)
        metrics.record_digests(report)
        return PassResult(queued_mail=report.messages > 0)

    def housekeeping_pass(now: datetime) -> PassResult:
        with transaction(engine) as session:
            forgotten = repositories.forget_deliveries(
                session, received_before=now - KEEP_CHAT_DELIVERIES
            )
        if forgotten:
            log.info("forgot %d chat deliveries older than %s", forgotten, KEEP_CHAT_DELIVERIES)
        return PassResult()

    def sent_forms_pass(now: datetime) -> PassResult:
        # Forms sent lately are remembered (with anonymous learners' sealed codes) no longer
        # than a second press of Send needs.
        submissions.forget_sent_forms(
            engine, sent_before=now - timedelta(seconds=SENT_REMEMBERED_SECONDS)
        )
        return PassResult()

    dispatch = Tick("dispatch", dispatch_pass, metrics=metrics)
    dispatchers = [dispatch]
    chat = product.chat
    if chat.slack_configured and chat.slack_bot_token is not None:
        client = dispatch_client(
            token=chat.slack_bot_token.get_secret_value(), api_url=chat.slack_api_url
        )

        def slack_dispatch_pass(now: datetime) -> PassResult:
            report = dispatch_due_slack(
                store=outbox,
                client=client,
                now=now,
                limit=DISPATCH_BATCH,
                stopping=lambda: slack_dispatch.stopping,
            )
            metrics.record_slack_dispatch(report)
            # A full batch posted (or done without posting: not in Slack): more may be waiting.
            # A batch cut short by a rate limit or a refused token is not run again at once: its
            # rows wait as long as Slack asked, or a few minutes.
            return PassResult(more_waiting=report.sent + report.skipped >= DISPATCH_BATCH)

        slack_dispatch = Tick("slack_dispatch", slack_dispatch_pass, metrics=metrics)
        dispatchers.append(slack_dispatch)

    if teams is not None:
        # The Agents SDK sends with aiohttp, on the loop the bot serves /api/messages on: the
        # pass (a worker thread, as every tick's) hands the sending to that loop and waits.
        # The outbox's database work goes back to worker threads from there. A pass cancelled
        # at shutdown ends its wait too.
        loop = asyncio.get_running_loop()
        poster = CardPoster(teams)

        def teams_dispatch_pass(now: datetime) -> PassResult:
            sending = dispatch_due_teams(store=outbox, poster=poster, now=now, limit=DISPATCH_BATCH)
            report = asyncio.run_coroutine_threadsafe(sending, loop).result()
            metrics.record_teams_dispatch(report)
            # As for Slack: a full batch (sent, or done without sending) may have more behind.
            return PassResult(more_waiting=report.sent + report.skipped >= DISPATCH_BATCH)

        dispatchers.append(Tick("teams_dispatch", teams_dispatch_pass, metrics=metrics))

    def wake_dispatchers() -> None:
        for tick in dispatchers:
            tick.wake()

    return (
        Tick("sweep", sweep_pass, metrics=metrics, then=wake_dispatchers),
        *dispatchers,
        Tick(
            "intake",
            intake_pass,
            metrics=metrics,
            then=wake_dispatchers,
            give_way=lambda: (
                mailbox.receiving(within=MAIL_QUIET_SECONDS)
                or (web_arrivals is not None and web_arrivals.receiving(within=MAIL_QUIET_SECONDS))
            ),
        ),
        Tick("digest", digest_pass, metrics=metrics, then=wake_dispatchers),
        Tick("housekeeping", housekeeping_pass, metrics=metrics),
        Tick("sent_forms", sent_forms_pass, metrics=metrics),
    )


def _scheduler(intervals: dict[Tick, int]) -> AsyncIOScheduler:
    """APScheduler as a timer only; every job's first run is now (catch-up after downtime)."""
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
    )
    for tick, seconds in intervals.items():
        scheduler.add_job(
            tick.run, "interval", seconds=seconds, id=tick.name, next_run_time=datetime.now(UTC)
        )
    scheduler.start()
    return scheduler


async def _quietly(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(Exception, SystemExit):
        await task


async def _wait_all(waits: Sequence[Awaitable[object]], *, timeout: float) -> bool:
    """Wait for all of these; False if one did not finish in time or reported it could not."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    return not pending and all(task.result() is not False for task in done if not task.exception())


def _listen(host: str, port: int, *, setting: str) -> socket.socket:
    """A bound TCP socket, so that a port in use is a clear message rather than uvicorn's exit."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise _cannot_listen("HTTP", host, port, setting, error) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # Listening at once holds the port: bound alone, another listener (the mailbox, given the
        # same port by mistake) could still take it, and uvicorn would fail after start-up.
        sock.listen(HTTP_BACKLOG)
    except OSError as error:
        sock.close()
        raise _cannot_listen("HTTP", host, port, setting, error) from None
    return sock


def _cannot_listen(what: str, host: str, port: int, setting: str, error: OSError) -> CannotServe:
    # asyncio rewords the error ("error while attempting to bind on ..."): use the errno's text.
    reason = os.strerror(error.errno) if error.errno else type(error).__name__
    return CannotServe(
        f"cannot listen for {what} on {host}:{port}: {reason.lower()} "
        f"(another program may be using it; choose another port with {setting})",
        status=1,
    )


def _print_banner(settings: Settings, *, mailbox: Mailbox, http_port: int, sender: Sender) -> None:
    web = f"http://{_in_url(settings.http_host)}:{http_port}"
    if isinstance(sender, SmtpRelaySender):
        outbound = f"sent through the relay {sender.host}:{sender.port}"
    else:
        outbound = f"written to {settings.outbox_dir / 'new'} (no relay set)"
    database = make_url(settings.database_url).render_as_string(hide_password=True)
    lines = [
        "Learner concerns is running.",
        f"  Mailbox: send mail to {settings.mailbox_address} "
        f"via SMTP {_in_url(settings.smtp_host)}:{mailbox.port}",
        f"  Learners: open {web}/ (the form to raise a concern: {web}/concerns/new)",
        f"  Web: {web}/healthz (metrics: {web}/metrics)",
        f"  Outbound mail: {outbound}",
        f"  Database: {database}",
        "  Stop with Ctrl+C (or SIGTERM): mail in progress is finished first.",
    ]
    if settings.secret_key.get_secret_value() == DEV_SECRET:
        lines.append(
            "  Note: CONCERNS_SECRET_KEY is the development default; set your own before real use."
        )
    if DEV_SECRET in settings.previous_secrets():
        lines.append(
            "  Note: CONCERNS_PREVIOUS_SECRET_KEYS lists the development default, so anyone can "
            "sign links and reply tokens the service accepts; remove it."
        )
    print("\n".join(lines), flush=True)


def _in_url(host: str) -> str:
    """A host as it is written before ':port': an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # aiosmtpd logs every envelope address and command at INFO: learners' addresses stay out.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # APScheduler logs each run; a skipped overlapping run is expected here, not a warning.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
