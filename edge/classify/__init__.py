"""Model runtimes: the LiteRT interpreter wrapper and the emotion classifier built on it."""
