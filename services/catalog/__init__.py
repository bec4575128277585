"""Catalog service: shops, varieties (products), variants with prices and stock, search, reservations."""
