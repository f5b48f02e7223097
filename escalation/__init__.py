"""escalation package."""
