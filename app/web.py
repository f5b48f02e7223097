"""The HTTP app: health and metrics for operators; every channel's routers are mounted here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.bootstrap import Product
from app.metrics import Metrics
from app.staff import templating as staff_templating
from app.staff.mount import mount_staff, staff_context
from bot.slack_app import SlackBot
from bot.teams_app import TeamsBot
from intake.web import assets, templating
from intake.web.context import WebContext, derived_key
from intake.web.mount import mount
from intake.web.security import RateLimitRules, RateLimits
from intake.web.templating import compile_templates, template_names, templates
from notifications import render
from storage.db import reading

log = logging.getLogger(__name__)

# A health check that waits longer than a load balancer's own timeout tells it nothing.
HEALTH_TIMEOUT_SECONDS = 5.0


def create_app(
    product: Product,
    *,
    metrics: Metrics,
    clock: Callable[[], datetime] | None = None,
    rate_limits: RateLimitRules | None = None,
    served_assets: dict[str, assets.Asset] | None = None,
    slack: SlackBot | None = None,
    teams: TeamsBot | None = None,
    on_received: Callable[[], None] | None = None,
) -> FastAPI:
    """The FastAPI app on this product (tests pass their own database, metrics and clock)."""
    # /docs is the staff API's own Swagger UI page (app.staff.docs), served without a CDN.
    app = FastAPI(
        title="Learner concerns",
        version="0.1.0",
        description="The staff API: the concerns a member of staff may see, and every action "
        "on them. Authorize with a staff API token (`concerns staff add` issues one).",
        docs_url=None,
        redoc_url=None,
    )
    secret = product.settings.secret_key.get_secret_value()
    web = WebContext(
        engine=product.engine,
        policy=product.policy,
        secret=secret,
        templates=templates(),
        limits=RateLimits(
            derived_key(secret, "rate-limits"),
            rate_limits
            or RateLimitRules(
                submissions=product.settings.submission_rate_limit,
                status_lookups=product.settings.status_lookup_rate_limit,
                sign_ins=product.settings.sign_in_rate_limit,
            ),
        ),
        clock=clock or (lambda: datetime.now(UTC)),
        on_received=on_received,
        on_raised=lambda: metrics.record_concern_raised(channel="web"),
        previous_secrets=product.settings.previous_secrets(),
    )
    app.state.web = web
    if served_assets is None:
        served_assets = assets.load_assets(product.settings.frontend_dir)
    mount(app, web, served_assets)
    mount_staff(
        app,
        staff_context(
            settings=product.settings,
            engine=product.engine,
            policy=product.policy,
            limits=web.limits,
            clock=web.clock,
            on_sign_in_failed=metrics.record_sign_in_failure,
        ),
    )

    # Concerns raised in chat are counted with the others (concerns_raised_total, by channel).
    if slack is not None:
        slack.on_raised = partial(metrics.record_concern_raised, channel="slack")
    if teams is not None:
        teams.on_raised = partial(metrics.record_concern_raised, channel="teams")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        try:
            await asyncio.wait_for(
                asyncio.to_thread(_select_one, product.engine), HEALTH_TIMEOUT_SECONDS
            )
        except Exception as error:
            # The type only: a driver's message can name hosts, users or paths.
            log.warning("healthz: the database did not answer (%s)", type(error).__name__)
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    # A plain `def`: FastAPI runs it in a worker thread, since a scrape reads the database.
    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/slack/events", include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        # Without Slack settings, or in Socket Mode alone (no signing secret to verify a
        # request by), the path does not exist, as far as anyone outside can tell.
        if slack is None or not slack.serves_http:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return await slack.handle(request)

    if teams is not None:
        # Where the SDK's JWT check finds what tokens must be issued for (our app and tenant).
        app.state.agent_configuration = teams.auth

    @app.post("/api/messages", include_in_schema=False)
    async def teams_messages(request: Request) -> Response:
        # Without Teams settings the path does not exist, as far as anyone outside can tell.
        if teams is None:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return await teams.handle(request)

    return app


def compile_pages(app: FastAPI) -> int:
    """Compile every learner and staff page and every email now, with the macros they import
    (`concerns serve` does this before it listens); returns how many templates were loaded."""
    learner = app.state.web.templates.env
    staff = app.state.staff.templates.env
    return (
        compile_templates(learner, template_names(templating.TEMPLATES))
        + compile_templates(staff, template_names(staff_templating.TEMPLATES))
        + compile_templates(render.environment(), template_names(render.TEMPLATES))
    )


def _select_one(engine: Engine) -> None:
    # A read takes no write lock: the database answers while another process writes.
    with reading(engine) as session:
        session.execute(text("SELECT 1"))
