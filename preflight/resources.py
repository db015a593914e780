"""Where the shipped data folders (checks/, reports/) live, installed or in a source checkout."""

from pathlib import Path


def data_dir(name: str) -> Path:
    """The folder `name`: inside the installed package, else at the top of the source tree."""
    packaged = Path(__file__).parent / name
    if packaged.is_dir():
        return packaged
    return Path(__file__).parent.parent / name
