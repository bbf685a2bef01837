"""Runs: the layer between training and the studies (the teacher bank; the run cache joins it)."""
