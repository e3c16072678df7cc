"""Logs now; metrics and access logs (issue 6) will live beside them, each defined once here."""
