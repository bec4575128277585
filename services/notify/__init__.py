"""Notify service: consumes events; the grower's inbox (live), email, signed webhooks with retries."""
