"""CLI for training and evaluation (train, eval, template, cv, learning-curve). Placeholder until issue 3 lands."""


def register(subparsers) -> None:
    pass
