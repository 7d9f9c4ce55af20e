"""SCOOT: SLO-oriented tuning of LLM inference engines."""
