"""Examples and the sample conversation that ``memagent demo`` ingests (installed as ``memagent.examples``)."""
