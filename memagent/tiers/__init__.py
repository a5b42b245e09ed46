"""The three tiers of one user's memory: episodic (here now), profile and knowledge graph."""
