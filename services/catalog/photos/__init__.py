"""Photos of a variety: uploaded from a phone, cleaned, resized, stored by content hash."""
