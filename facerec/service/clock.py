"""The one clock every service writes times with: UTC, to the millisecond, as ISO 8601 with its offset
(`2026-12-06T07:25:03.123+00:00`), so the store's and the stream's times read and sort alike."""

from datetime import UTC, datetime


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
