"""How numbers and words are printed in the paper (LaTeX source)."""

import math

from paper.results import Stat
from seqattn.errors import DataError


def num(value: float, decimals: int) -> str:
    """Fixed decimals; a minus sign LaTeX sets as one (pdftotext reads it back as U+2212)."""
    if not math.isfinite(value):
        raise DataError(f"a non-finite value ({value}) would be printed in the paper")
    text = f"{value:.{decimals}f}"
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return text.replace("-", "$-$") if text.startswith("-") else text


def signed(value: float, decimals: int) -> str:
    """Like `num`, with a plus sign on positive values: for changes."""
    text = num(value, decimals)
    return text if text.startswith("$-$") or float(text) == 0.0 else "+" + text


def pm(stat: Stat, decimals: int) -> str:
    return f"{num(stat.mean, decimals)}\\,$\\pm$\\,{num(stat.std, decimals)}"


def pct(value: float, decimals: int = 1) -> str:
    return f"{num(value, decimals)}\\%"


def words(n: int) -> str:
    return {0: "zero", 1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
            9: "nine", 10: "ten"}.get(n, str(n))


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def counted(n: int, noun: str) -> str:
    """"one block", "two blocks": `plural` with the number in words."""
    return f"{words(n)} {noun}" + ("" if n == 1 else "s")


def every(n: int, noun: str) -> str:
    """"every 4th decoded prediction", "every decoded prediction" for n = 1."""
    if n == 1:
        return f"every {noun}"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"every {n}{suffix} {noun}"


def count(n: int) -> str:
    """An integer with thousands separators: 12,800."""
    return f"{int(n):,}"


def listing(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def duration(seconds: float) -> str:
    """Wall time in words: hours with one decimal from one hour on, else whole minutes."""
    if seconds >= 3600:
        return f"{num(seconds / 3600, 1)} hours"
    return plural(max(1, round(seconds / 60)), "minute")


def latex_escape(text: str) -> str:
    for char, repl in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                       ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(char, repl)
    return text
