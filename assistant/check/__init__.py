"""Corrections as you type: each finished sentence checked once, offline rules at once and
Haiku (with a key) on a pause. Sans-I/O; the server's ``server/checks.py`` drives it."""
