"""The jupyter-server extension: REST handlers over the library (no business logic here)."""
