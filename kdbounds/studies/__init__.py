"""Studies: each experiment grid as a list of runs, executed by one sweep runner (:mod:`.sweep`)."""
