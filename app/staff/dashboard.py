"""Placeholder, replaced by the module's own routes."""

from __future__ import annotations

from fastapi import APIRouter

from app.staff.context import StaffContext


def router(context: StaffContext) -> APIRouter:
    return APIRouter()
