"""Built-in scenario files (package data): ``mine``, ``foundry``, ``construction``."""
