"""Email to growers and buyers: queued with the event (``queue.py``), rendered from Jinja2 templates
(``render.py``), sent over SMTP by a background sender with retries (``sender.py``, ``transport.py``)."""
