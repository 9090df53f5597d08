"""Resume: the journal, opening and repairing a run, input filters."""
