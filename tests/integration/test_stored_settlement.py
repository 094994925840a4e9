"""The end of a closed period's stored settlement, read without the rest of it
(coalition.db.stored_settlement): what the KPIs read of a settlement whose pair lines
take megabytes."""

from datetime import UTC, datetime

from coalition.db import models, stored_settlement

MARKER = '"partners":['


def test_the_end_is_found_past_the_first_read_and_after_characters_of_two_bytes(database):
    # 6 bytes, 60,000 × "Ærø" (5 bytes in UTF-8: Æ and ø two each) and 2 bytes before the
    # marker (12 bytes), 100,004 after it: 400,024 bytes. On SQLite the first read (the last 65,536
    # bytes) holds no marker, and the second (262,144) begins 400,024 − 262,144 = 137,880
    # bytes in, 6 + 5 × 27,574 + 4: the second byte of an "ø". Only the text from the
    # marker on is whole characters
    after = "x" * 100_002 + "]}"
    with database.transaction() as session:
        session.add(
            models.Period(
                id="2026-11",
                start=datetime(2026, 11, 1, tzinfo=UTC),
                end=datetime(2026, 12, 1, tzinfo=UTC),
                closed_at=datetime(2026, 12, 1, 1, tzinfo=UTC),
                settlement='{"a":"' + "Ærø" * 60_000 + '",' + MARKER + after,
            )
        )
    read = database.run_reading(stored_settlement.from_marker, "2026-11", MARKER)
    assert read == MARKER + after
