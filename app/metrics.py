"""Prometheus metrics for /metrics: counters the service feeds, and gauges read at scrape time.

Each `Metrics` owns its registry (never the global one), so tests can build as many apps as they
like. The mailbox keeps its own plain counters (it is on the hot path); they are read when
Prometheus scrapes, as are the outbox and inbox row counts from the database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from escalation.digest import DigestReport
from escalation.sweep import SweepReport
from intake.mail_intake import IntakeReport
from intake.mailbox import REJECTION_REASONS, MailboxCounters
from intake.received import RaisingReport
from notifications.outbox import DispatchReport
from storage.db import reading
from storage.inbox import DEALT_WITH, KEPT_ASIDE, inbound_counts
from storage.outbox import SqlOutboxStore
from storage.submissions import waiting_count

log = logging.getLogger(__name__)

PREFIX = "concerns"


class Metrics:
    """The service's counters and gauges, and the registry /metrics renders."""

    def __init__(self, *, engine: Engine | None = None) -> None:
        self.registry = CollectorRegistry()
        self._mailbox = _MailboxCollector()
        self.registry.register(self._mailbox)
        if engine is not None:
            self.registry.register(_DatabaseCollector(engine))

        def counter(name: str, help: str, labels: Iterable[str] = ()) -> Counter:
            return Counter(f"{PREFIX}_{name}", help, labelnames=labels, registry=self.registry)

        self.emails_processed = counter("emails_processed", "Stored emails processed by intake")
        self.concerns_raised = counter("raised", "Concerns raised, by channel", ["channel"])
        self.replies_attached = counter(
            "email_replies_attached", "Emails attached to a concern as a reply"
        )
        self.acknowledgements = counter(
            "email_acknowledgements", "Contacts' replies recorded as their acknowledgement"
        )
        self.emails_ignored = counter(
            "emails_ignored", "Automatic mail (auto-replies, bounces, bulk) stored, not answered"
        )
        self.emails_quarantined = counter("emails_quarantined", "Emails kept aside for staff")
        self.intake_failures = counter(
            "email_processing_failures", "Attempts to process a stored email that failed"
        )
        self.web_raising_failures = counter(
            "web_raising_failures", "Attempts to raise a stored web form submission that failed"
        )
        self.outbox_sent = counter("outbox_sent", "Outbox messages sent")
        self.outbox_retried = counter("outbox_retried", "Outbox sends that will be retried")
        self.outbox_failed = counter("outbox_failed", "Outbox messages given up on")
        self.slack_sent = counter("slack_sent", "Slack messages posted from the outbox")
        self.slack_retried = counter("slack_retried", "Slack posts that will be retried")
        self.slack_failed = counter("slack_failed", "Slack messages given up on")
        self.teams_sent = counter("teams_sent", "Teams cards sent from the outbox")
        self.teams_retried = counter("teams_retried", "Teams sends that will be retried")
        self.teams_failed = counter("teams_failed", "Teams messages given up on")
        self.teams_skipped = counter(
            "teams_skipped", "Teams messages not sent: no conversation with the person yet"
        )
        self.sweep_runs = counter("sweep_runs", "Escalation sweeps run")
        self.sweep_steps = counter("sweep_steps_applied", "Escalation steps applied", ["kind"])
        self.sweep_failures = counter("sweep_failures", "Concerns whose due steps failed")
        self.digests = counter(
            "digests",
            "Digest runs this instance recorded (or found done), by kind and outcome",
            ["kind", "outcome"],
        )
        self.digest_messages = counter(
            "digest_messages_queued", "Digest messages queued, by kind", ["kind"]
        )
        self.digest_failures = counter("digest_failures", "Digest runs that failed (retried)")
        self.sign_in_failures = counter(
            "staff_sign_in_failures",
            "Staff sign-in links that could not be made or queued (the page said to check email)",
        )
        self.tick_errors = counter(
            "tick_errors", "Scheduler ticks that ended with an error", ["job"]
        )
        # Known label values appear at 0 before anything happens, so dashboards see them.
        for channel in ("email", "web", "slack", "teams"):
            self.concerns_raised.labels(channel=channel)

    def watch_mailbox(self, counters: MailboxCounters) -> None:
        """Report this mailbox's counters (read at every scrape)."""
        self._mailbox.counters = counters

    def record_intake(self, report: IntakeReport) -> None:
        """Count one pass of email intake."""
        self.emails_processed.inc(report.processed)
        self.concerns_raised.labels(channel="email").inc(report.new_concerns)
        self.replies_attached.inc(report.replies)
        self.acknowledgements.inc(report.acknowledgements)
        self.emails_ignored.inc(report.ignored)
        self.emails_quarantined.inc(report.quarantined)
        self.intake_failures.inc(report.failed)

    def record_concern_raised(self, *, channel: str) -> None:
        """Count a concern raised outside email (web form, Slack, Teams)."""
        self.concerns_raised.labels(channel=channel).inc()

    def record_web_raising(self, report: RaisingReport) -> None:
        """Count one pass raising stored web form submissions."""
        self.concerns_raised.labels(channel="web").inc(report.raised)
        self.web_raising_failures.inc(report.failed)

    def record_dispatch(self, report: DispatchReport) -> None:
        """Count one pass of the outbox dispatcher."""
        self.outbox_sent.inc(report.sent)
        self.outbox_retried.inc(report.retried)
        self.outbox_failed.inc(report.failed)

    def record_slack_dispatch(self, report: DispatchReport) -> None:
        """Count one pass of the Slack dispatcher."""
        self.slack_sent.inc(report.sent)
        self.slack_retried.inc(report.retried)
        self.slack_failed.inc(report.failed)

    def record_teams_dispatch(self, report: DispatchReport) -> None:
        """Count one pass of the Teams dispatcher."""
        self.teams_sent.inc(report.sent)
        self.teams_retried.inc(report.retried)
        self.teams_failed.inc(report.failed)
        self.teams_skipped.inc(report.skipped)

    def record_sweep(self, report: SweepReport) -> None:
        """Count one escalation sweep."""
        self.sweep_runs.inc()
        for step in report.applied:
            self.sweep_steps.labels(kind=step.kind).inc()
        self.sweep_failures.inc(len(report.failed))

    def record_digests(self, report: DigestReport) -> None:
        """Count one digest tick: the runs it recorded and the messages it queued."""
        for outcome in report.outcomes:
            self.digests.labels(kind=outcome.kind.value, outcome=outcome.status.value).inc()
            self.digest_messages.labels(kind=outcome.kind.value).inc(outcome.messages)
        self.digest_failures.inc(len(report.failed))

    def record_sign_in_failure(self) -> None:
        """Count a sign-in link that was asked for but could not be made or queued."""
        self.sign_in_failures.inc()

    def record_tick_error(self, *, job: str) -> None:
        """Count a tick that raised (it is logged and the service carries on)."""
        self.tick_errors.labels(job=job).inc()


class _MailboxCollector(Collector):
    """The SMTP mailbox's own counters, as Prometheus counters."""

    def __init__(self) -> None:
        self.counters: MailboxCounters | None = None

    def describe(self) -> Iterable[Metric]:
        return self._families(MailboxCounters())

    def collect(self) -> Iterable[Metric]:
        return self._families(self.counters or MailboxCounters())

    @staticmethod
    def _families(counters: MailboxCounters) -> list[Metric]:
        accepted = CounterMetricFamily(
            f"{PREFIX}_smtp_accepted", "SMTP deliveries committed and answered 250"
        )
        accepted.add_metric([], counters.accepted)
        failed = CounterMetricFamily(
            f"{PREFIX}_smtp_temporary_failures",
            "SMTP deliveries answered 451 (not stored; the sender retries)",
        )
        failed.add_metric([], counters.failed_451)
        rejected = CounterMetricFamily(
            f"{PREFIX}_smtp_rejected", "SMTP commands or connections refused", labels=["reason"]
        )
        for reason in REJECTION_REASONS:
            rejected.add_metric([reason], counters.rejected.get(reason, 0))
        return [accepted, failed, rejected]


WAITING_HELP = "Web form submissions stored and not yet raised (failed ones wait to retry)"


class _DatabaseCollector(Collector):
    """Row counts read from the database when Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def describe(self) -> Iterable[Metric]:
        # Without this, registering would run a scrape (and touch the database) at once.
        return [
            GaugeMetricFamily(f"{PREFIX}_outbox_messages", "Outbox rows by status"),
            GaugeMetricFamily(f"{PREFIX}_inbound_messages", "Stored emails by status"),
            GaugeMetricFamily(f"{PREFIX}_web_submissions_waiting", WAITING_HELP),
            GaugeMetricFamily(f"{PREFIX}_database_up", "1 if the database answered the scrape"),
        ]

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(f"{PREFIX}_database_up", "1 if the database answered the scrape")
        try:
            outbox = SqlOutboxStore(self._engine).counts()
            with reading(self._engine) as session:
                inbound = inbound_counts(session)
                waiting = waiting_count(session)
        except Exception as error:
            log.warning("metrics: the database did not answer (%s)", type(error).__name__)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        outbox_family = GaugeMetricFamily(
            f"{PREFIX}_outbox_messages", "Outbox rows by status", labels=["status"]
        )
        for status, count in sorted(outbox.items()):
            outbox_family.add_metric([status], count)
        inbound_family = GaugeMetricFamily(
            f"{PREFIX}_inbound_messages", "Stored emails by status", labels=["status"]
        )
        for status in ("received", "processed", "ignored", KEPT_ASIDE, DEALT_WITH):
            inbound.setdefault(status, 0)
        for status, count in sorted(inbound.items()):
            inbound_family.add_metric([status], count)
        waiting_family = GaugeMetricFamily(f"{PREFIX}_web_submissions_waiting", WAITING_HELP)
        waiting_family.add_metric([], waiting)
        return [outbox_family, inbound_family, waiting_family, up]
