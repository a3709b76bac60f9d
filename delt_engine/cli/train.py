"""Placeholder until this command group lands (owned by its issue)."""


def register(subparsers):
    pass
