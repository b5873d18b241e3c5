"""Tornado handlers of the server extension; ``base.MLPlatHandler`` is the one base class."""
