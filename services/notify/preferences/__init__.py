"""Each account's notification preferences: where mail goes, in which language, and whether at all."""
