"""A module of the flow's project, beside the flow file (not installed anywhere)."""


def shout(word: str) -> str:
    return word.upper() + "!"
