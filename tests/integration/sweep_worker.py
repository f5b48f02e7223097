"""One sweeper instance for the many-instances tests: a sweep, then the outbox dispatch, as the
`concerns serve` ticks run them, at a fixed moment and in a process of its own.

    python -m tests.integration.sweep_worker --database-url URL --now ISO [--relay-url URL]
        [--no-sweep] [--no-dispatch]

It wires the product the way `app.serve` does (settings -> bootstrap -> sweep, outbox store,
SMTP relay sender, mail threading) and prints one JSON line per stage on stdout, flushed at once,
so that a test can tell where a process was when it killed it: {"stage": "sweeping"}, then
{"stage": "swept", ...}, {"stage": "dispatching"}, {"stage": "dispatched", ...}. Exit status 0
when every step and every send went through, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import SecretStr
from sqlalchemy.engine import Engine

from app import bootstrap
from app.settings import Settings
from escalation.policy import Policy
from escalation.sweep import SweepReport, sweep
from notifications.outbox import DispatchReport, dispatch_due
from notifications.senders import Sender, sender_from_settings
from notifications.threading import MailThreading
from storage.outbox import SqlOutboxStore

# What `concerns serve` claims per dispatch tick (app.serve.DISPATCH_BATCH).
DISPATCH_BATCH = 20
# Test settings every instance shares: the threading key decides every Message-ID.
SECRET_KEY = "many-instances-test-secret"
MAILBOX = "escalating-concerns@example.nhs.uk"


@dataclass
class InstanceRun:
    """What one instance did in one run: the sweep's report and the dispatch totals."""

    swept: SweepReport | None = None
    dispatched: DispatchReport = field(default_factory=DispatchReport)

    @property
    def ok(self) -> bool:
        sweep_ok = self.swept is None or not self.swept.failed
        return sweep_ok and self.dispatched.retried == 0 and self.dispatched.failed == 0


def settings_for(database_url: str, relay_url: str | None) -> Settings:
    """The settings every instance of the test runs with (nothing read from a .env file)."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        smtp_relay_url=relay_url,
        secret_key=SecretStr(SECRET_KEY),
        mailbox_address=MAILBOX,
    )


def threading_for(settings: Settings) -> MailThreading:
    """The Message-ID and Reply-To tokens, keyed as `app.serve` keys them."""
    return MailThreading(settings.secret_key.get_secret_value().encode(), settings.mailbox_address)


def run_instance(
    *,
    engine: Engine,
    policy: Policy,
    sender: Sender,
    threading: MailThreading,
    now: datetime,
    do_sweep: bool = True,
    do_dispatch: bool = True,
    progress: bool = False,
) -> InstanceRun:
    """One sweep at `now`, then dispatch batches until nothing due at `now` is left to claim."""
    run = InstanceRun()
    if do_sweep:
        _say(progress, stage="sweeping")
        run.swept = sweep(engine=engine, now=now, policy=policy)
        _say(
            progress,
            stage="swept",
            applied=[[step.reference, step.kind] for step in run.swept.applied],
            failed=run.swept.failed,
        )
    if do_dispatch:
        _say(progress, stage="dispatching")
        store = SqlOutboxStore(engine)
        while True:
            batch = dispatch_due(
                store=store,
                sender=sender,
                threading=threading,
                from_address=threading.mailbox,
                now=now,
                limit=DISPATCH_BATCH,
            )
            run.dispatched.sent += batch.sent
            run.dispatched.retried += batch.retried
            run.dispatched.failed += batch.failed
            run.dispatched.errors += batch.errors
            # `now` is fixed: a row that failed waits for a later moment, so this ends.
            if batch.sent + batch.retried + batch.failed == 0:
                break
        _say(
            progress,
            stage="dispatched",
            sent=run.dispatched.sent,
            retried=run.dispatched.retried,
            failed=run.dispatched.failed,
            errors=run.dispatched.errors[:5],
        )
    return run


def _say(progress: bool, **line: object) -> None:
    if progress:
        print(json.dumps({**line, "at": round(time.monotonic(), 3)}), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.sweep_worker")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--now", required=True, help="an ISO-8601 time with its offset")
    parser.add_argument("--relay-url", help="smtp://host:port (default: the Maildir of settings)")
    parser.add_argument("--no-sweep", dest="do_sweep", action="store_false")
    parser.add_argument("--no-dispatch", dest="do_dispatch", action="store_false")
    args = parser.parse_args(argv)
    now = datetime.fromisoformat(args.now)
    if now.tzinfo is None:
        parser.error("--now needs an offset, e.g. 2026-12-07T10:00:00+00:00")
    settings = settings_for(args.database_url, args.relay_url)
    product = bootstrap.build(settings)
    try:
        run = run_instance(
            engine=product.engine,
            policy=product.policy,
            sender=sender_from_settings(settings.relay_url(), settings.outbox_dir),
            threading=threading_for(settings),
            now=now,
            do_sweep=args.do_sweep,
            do_dispatch=args.do_dispatch,
            progress=True,
        )
    finally:
        product.engine.dispose()
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main())
