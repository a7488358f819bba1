"""Everything that turns raw material into labelled prompts."""
