"""A shop's products in and out of CSV files (``import-csv``, ``export-csv``): see service.py."""
