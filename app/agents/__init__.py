"""Agents: the registry's kinds (demo, http, openai, command) behind one gateway."""
