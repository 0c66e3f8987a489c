"""Plain-text tables for the terminal, README and results folders."""


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-style markdown table; floats get 4 significant digits."""

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
