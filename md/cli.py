"""CLI for ``mlpot md``. Placeholder until issue 4 lands."""


def register(subparsers) -> None:
    pass
