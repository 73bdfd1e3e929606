"""The ``.espdl`` file: reading it, running it as ESP-DL does (the executor), what it needs from ESP-DL (compat,
coverage), its seal, its memory, and ``inspect``."""
