"""Tests of the serve process (jupyter_mlplat.serving)."""
