"""Pure ask/tell optimizers behind ``suggest(history, n, rng)``; no I/O here."""
