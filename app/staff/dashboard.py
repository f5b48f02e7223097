"""The dashboard page and its CSV export: deans, quality teams and admins only.

Anyone else is answered 404, as if the page did not exist. `?region=KEY` narrows the page to one
of the regions the person covers; a region they do not cover is a page that does not exist.
The heat map prints each cell's count, rating and level (colour is never the only carrier), and
the trend is a server-drawn SVG chart with the same numbers in a table: no JavaScript, no inline
styles (the CSP allows neither).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from app.staff.auth import SignedIn, staff_page_user
from app.staff.context import StaffContext
from app.staff.templating import staff_page
from escalation.dashboard import (
    Dashboard,
    MonthCount,
    dashboard_data,
    dashboard_regions,
    export_dashboard_csv,
)
from notifications.email import safe_filename
from routing.access import sees_dashboard
from routing.model import Rating
from storage.db import transaction
from storage.tables import Region, id_of

# NHS.UK tag colours for the matrix's ratings; the cell's words say the same.
RATING_TAGS = {
    Rating.R: "nhsuk-tag--red",
    Rating.A_R: "nhsuk-tag--orange",
    Rating.A: "nhsuk-tag--yellow",
    Rating.G_A: "nhsuk-tag--aqua-green",
    Rating.G: "nhsuk-tag--green",
}
CHART_WIDTH, CHART_HEIGHT = 720, 260
CHART_TOP, CHART_BOTTOM, CHART_LEFT = 24, 40, 8


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    label: str
    value: int
    label_x: int


def chart_bars(trend: tuple[MonthCount, ...]) -> list[Bar]:
    """The trend's bars in SVG units: month labels under them, counts above."""
    if not trend:
        return []
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    slot = (CHART_WIDTH - 2 * CHART_LEFT) // len(trend)
    peak = max(max(month.raised for month in trend), 1)
    bars = []
    for index, month in enumerate(trend):
        height = round(plot_height * month.raised / peak)
        x = CHART_LEFT + index * slot + slot // 8
        width = slot - slot // 4
        bars.append(
            Bar(
                x=x,
                y=CHART_TOP + plot_height - height,
                width=width,
                height=height,
                label=month.label,
                value=month.raised,
                label_x=x + width // 2,
            )
        )
    return bars


def _chosen_regions(session_regions: list[Region], key: str | None) -> list[Region]:
    if not key:
        return session_regions
    chosen = [region for region in session_regions if region.key == key.strip()]
    if not chosen:
        raise HTTPException(status_code=404)
    return chosen


def router(context: StaffContext) -> APIRouter:
    routes = APIRouter()

    def covered(signed_in: SignedIn, region: str | None) -> tuple[list[Region], list[Region]]:
        if not sees_dashboard(signed_in.who):
            raise HTTPException(status_code=404)
        with transaction(context.engine) as session:
            regions = dashboard_regions(session, signed_in.who)
        return regions, _chosen_regions(regions, region)

    @routes.get("/staff/dashboard", response_class=HTMLResponse)
    def dashboard_page(
        request: Request,
        signed_in: Annotated[SignedIn, Depends(staff_page_user)],
        region: str | None = None,
    ) -> HTMLResponse:
        regions, chosen = covered(signed_in, region)
        with transaction(context.engine) as session:
            data: Dashboard = dashboard_data(
                session,
                signed_in.who,
                now=context.clock(),
                policy=context.policy,
                region_ids=[id_of(found) for found in chosen],
            )
        csv_href = "/staff/dashboard.csv" + (f"?region={quote(chosen[0].key)}" if region else "")
        return staff_page(
            context.templates,
            request,
            "dashboard.html",
            {
                "data": data,
                "regions": regions,
                "chosen": region.strip() if region else "",
                "rating_tags": RATING_TAGS,
                "bars": chart_bars(data.trend),
                "chart": {
                    "width": CHART_WIDTH,
                    "height": CHART_HEIGHT,
                    "baseline": CHART_HEIGHT - CHART_BOTTOM,
                },
                "csv_href": csv_href,
                "local": lambda moment: moment.astimezone(context.policy.calendar.timezone),
            },
        )

    @routes.get("/staff/dashboard.csv")
    def dashboard_export(
        signed_in: Annotated[SignedIn, Depends(staff_page_user)],
        region: str | None = None,
    ) -> Response:
        _, chosen = covered(signed_in, region)
        now = context.clock()
        with transaction(context.engine) as session:
            text = export_dashboard_csv(
                session,
                signed_in.who,
                signed_in.member,
                channel="web",
                now=now,
                policy=context.policy,
                regions=chosen,
            )
        stamp = now.astimezone(context.policy.calendar.timezone).date().isoformat()
        scope = chosen[0].key if region else "all-regions"
        return Response(
            content=text,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": (
                    f'attachment; filename="{safe_filename(f"concerns-{scope}-{stamp}")}.csv"'
                ),
                "Cache-Control": "no-store",
            },
        )

    return routes
