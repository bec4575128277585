"""The carrier and tracking code of an order sent out, and the carriers' public tracking pages."""
