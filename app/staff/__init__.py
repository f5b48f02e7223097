"""The staff side over HTTP: sign-in, the staff pages and the JSON API.

Thin adapters over `escalation.casework` (who may see and do what) and `escalation.dashboard`.
They live in `app` because they share the web protections of the learner pages (`intake.web`:
CSRF, security headers, rate limits, the NHS.UK templates), and `escalation` sits below `intake`.
"""
