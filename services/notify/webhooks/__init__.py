"""Webhooks for integrators, after the Standard Webhooks spec (https://www.standardwebhooks.com).

- ``models.py``: endpoints (signing secret encrypted at rest), deliveries and their attempt log;
- ``signing.py``: ``whsec_`` secrets and ``v1,`` HMAC-SHA256 signatures;
- ``ssrf.py``: which addresses an endpoint may have, checked at registration and at every send;
- ``service.py``: managing endpoints, queueing deliveries in an event's transaction, disabling;
- ``sender.py``: the background task that posts due deliveries and retries them on a schedule;
- ``endpoints.py``: ``/api/v1/webhooks``.
"""
