"""Persistence: the SQL store (runs, steps, metrics) and the content-addressed artifact store."""
