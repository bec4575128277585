"""Shared infrastructure for Chợ Vườn's apps: settings, database, errors, logging, metrics.

Nothing here knows about shops, orders or notifications; domain code lives in the apps.
"""
