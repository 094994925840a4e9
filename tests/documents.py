"""Reading a rendered CSV back in tests, as a finance team's script would."""

import csv
import io


def csv_blocks(data: bytes) -> list[list[list[str]]]:
    """Split the CSV into its blank-line separated blocks."""
    blocks: list[list[list[str]]] = [[]]
    for row in csv.reader(io.StringIO(data.decode("utf-8"), newline="")):
        if row:
            blocks[-1].append(row)
        else:
            blocks.append([])
    return blocks
