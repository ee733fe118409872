"""The demo marketing drops: daily files in a landing folder, as ad platforms and a web
analytics tool would deliver them.

- `ad_spend/ad_spend_<day>.csv`: spend, impressions and clicks per campaign and day
- `web_sessions/web_sessions_<day>.jsonl`: one session per line; a session that ended in
  an order carries the shop's `order_id` (orders of that day are read from the demo shop)
- `campaigns/campaigns_<day>.parquet`: the campaign list (a snapshot, re-sent on changes)

Everything is derived from the day (a seeded RNG), so the same day always gives the same
files. Now and then a delivery is malformed, deterministically: a short CSV row, a
broken JSON line, a Parquet budget sent as text, a Windows-1252 byte, a stray quote.
Files are written to a temporary name and renamed, so a load never reads half a file.
"""

from __future__ import annotations

import json
import random
from contextlib import closing
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

__all__ = ["CAMPAIGNS", "is_seeded", "reset", "seed", "tick"]

SEED_DAYS = 14
CURRENCY = "EUR"
# (campaign_id, name, channel, objective, daily budget in EUR)
CAMPAIGNS = (
    ("SRCH-BRAND", "Search: brand terms", "search", "conversions", Decimal("120.00")),
    ("SRCH-GENERIC", "Search: generic terms", "search", "conversions", Decimal("260.00")),
    ("SRCH-SHOPPING", "Search: shopping ads", "search", "sales", Decimal("180.00")),
    ("SOC-PROSPECT", "Social: prospecting", "social", "reach", Decimal("150.00")),
    ("SOC-RETARGET", "Social: retargeting", "social", "conversions", Decimal("90.00")),
    ("SOC-VIDEO", "Social: video", "social", "awareness", Decimal("70.00")),
    ("DSP-BANNERS", "Display: banners", "display", "awareness", Decimal("60.00")),
    ("DSP-RETARGET", "Display: retargeting", "display", "conversions", Decimal("45.00")),
    ("AFF-NETWORK", "Affiliate network", "affiliate", "sales", Decimal("80.00")),
    ("AFF-VOUCHER", "Affiliate: vouchers", "affiliate", "sales", Decimal("40.00")),
    ("EML-NEWSLETTER", "Email: newsletter", "email", "retention", Decimal("15.00")),
    ("EML-WINBACK", "Email: win-back", "email", "retention", Decimal("10.00")),
)
# where sessions come from; the paid channels are those of the campaigns
SESSION_CHANNELS = {
    "organic": 30,
    "direct": 20,
    "search": 20,
    "social": 12,
    "display": 5,
    "email": 6,
    "affiliate": 5,
    "referral": 2,
}
PAGES = ("/", "/sale", "/category/books", "/category/electronics", "/category/home", "/blog")
DEVICES = ("mobile", "mobile", "desktop", "tablet")
AD_SPEND_HEADER = "spend_date,campaign_id,channel,impressions,clicks,spend,currency"
MALFORMED_EVERY = 3  # every third tick delivers something malformed
MALFORMED_KINDS = (
    "csv_short_row",
    "jsonl_broken_line",
    "parquet_budget_as_text",
    "csv_cp1252_byte",
    "jsonl_naive_timestamp",
    "csv_stray_quote",
)


def _files(landing: Path, feed: str, suffix: str) -> list[Path]:
    return sorted((landing / feed).glob(f"{feed}_*{suffix}"))


def is_seeded(landing: Path) -> bool:
    return bool(_files(landing, "ad_spend", ".csv"))


def reset(landing: Path) -> None:
    """Remove the demo's own files (and nothing else) from the landing folder."""
    for feed, suffix in (
        ("ad_spend", ".csv"),
        ("web_sessions", ".jsonl"),
        ("campaigns", ".parquet"),
    ):
        for path in _files(landing, feed, suffix):
            path.unlink()


def last_day(landing: Path) -> date | None:
    files = _files(landing, "ad_spend", ".csv")
    return date.fromisoformat(files[-1].stem.removeprefix("ad_spend_")) if files else None


def seed(
    landing: Path, shop_url: str | None = None, *, today: date | None = None
) -> dict[str, int]:
    """Write the SEED_DAYS days before today, the campaign list, and one malformed CSV row."""
    today = today or datetime.now(UTC).date()
    first = today - timedelta(days=SEED_DAYS)
    counts = {"campaigns": _write_campaigns(landing, first, None)}
    for offset in range(SEED_DAYS):
        day = first + timedelta(days=offset)
        malformed = "csv_short_row" if offset == SEED_DAYS - 3 else None
        _add(counts, _write_day(landing, day, shop_url, malformed))
    return {"days": SEED_DAYS, **counts}


def tick(landing: Path, shop_url: str | None = None) -> dict[str, int | str]:
    """Write the day after the last one written; every MALFORMED_EVERY-th is malformed."""
    previous = last_day(landing)
    if previous is None:
        raise ValueError("the landing folder has no demo files; run `elt demo` first")
    day = previous + timedelta(days=1)
    number = len(_files(landing, "ad_spend", ".csv")) - SEED_DAYS + 1
    malformed = None
    if number % MALFORMED_EVERY == 0:
        malformed = MALFORMED_KINDS[(number // MALFORMED_EVERY - 1) % len(MALFORMED_KINDS)]
    counts: dict[str, int | str] = {"day": day.isoformat()}
    if malformed == "parquet_budget_as_text":
        counts["campaigns"] = _write_campaigns(landing, day, malformed)
    _add(counts, _write_day(landing, day, shop_url, malformed))
    if malformed:
        counts["malformed"] = malformed
    return counts


def _add(counts: dict, more: dict[str, int]) -> None:
    for key, value in more.items():
        counts[key] = counts.get(key, 0) + value


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def _write_day(
    landing: Path, day: date, shop_url: str | None, malformed: str | None
) -> dict[str, int]:
    spend = _ad_spend_lines(day)
    sessions = _session_lines(day, _orders_of(shop_url, day))
    if malformed == "csv_short_row":
        spend[4] = ",".join(spend[4].split(",")[:5])  # spend and currency missing
    elif malformed == "csv_stray_quote":
        fields = spend[6].split(",")
        fields[1] = fields[1][:4] + '"' + fields[1][4:]
        spend[6] = ",".join(fields)
    elif malformed == "jsonl_broken_line":
        sessions[10] = sessions[10][: len(sessions[10]) // 2]
    elif malformed == "jsonl_naive_timestamp":
        row = json.loads(sessions[20])
        row["started_at"] = row["started_at"].removesuffix("Z")
        sessions[20] = json.dumps(row)
    spend_bytes = "\n".join([AD_SPEND_HEADER, *spend]).encode() + b"\n"
    if malformed == "csv_cp1252_byte":  # a euro sign from a Windows export
        lines = spend_bytes.split(b"\n")
        lines[3] = lines[3].replace(b",EUR", b",\x80")
        spend_bytes = b"\n".join(lines)
    _write(landing / "ad_spend" / f"ad_spend_{day.isoformat()}.csv", spend_bytes)
    _write(
        landing / "web_sessions" / f"web_sessions_{day.isoformat()}.jsonl",
        ("\n".join(sessions) + "\n").encode(),
    )
    return {"ad_spend_rows": len(spend), "web_sessions_rows": len(sessions)}


def _ad_spend_lines(day: date) -> list[str]:
    rng = random.Random(f"ad_spend:{day.isoformat()}")
    lines = []
    for campaign_id, _name, channel, _objective, budget in CAMPAIGNS:
        spend = (budget * Decimal(rng.randint(55, 105)) / 100).quantize(Decimal("0.01"))
        impressions = int(spend * rng.randint(40, 160))
        clicks = max(1, impressions * rng.randint(5, 40) // 1000)
        lines.append(f"{day},{campaign_id},{channel},{impressions},{clicks},{spend},{CURRENCY}")
    return lines


def _session_lines(day: date, orders: list[tuple[int, int, datetime]]) -> list[str]:
    rng = random.Random(f"web_sessions:{day.isoformat()}")
    channels, weights = zip(*SESSION_CHANNELS.items(), strict=True)
    start = datetime.combine(day, time(), UTC)
    sessions = []

    def session(session_id: str, at: datetime, **extra: object) -> dict:
        channel = rng.choices(channels, weights)[0]
        paid = [c[0] for c in CAMPAIGNS if c[2] == channel]
        return {
            "session_id": session_id,
            "started_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "channel": channel,
            "campaign_id": rng.choice(paid) if paid else None,
            "landing_page": rng.choice(PAGES),
            "device": rng.choice(DEVICES),
            "pageviews": rng.randint(1, 12),
            **extra,
        }

    for index in range(rng.randint(150, 250)):
        at = start + timedelta(seconds=rng.randrange(86_400))
        sessions.append(session(f"{day:%Y%m%d}-{index:05d}", at))
    for order_id, customer_id, ordered_at in orders:
        at = max(start, ordered_at - timedelta(minutes=rng.randint(2, 45)))
        sessions.append(
            session(f"{day:%Y%m%d}-o{order_id}", at, customer_id=customer_id, order_id=order_id)
        )
    sessions.sort(key=lambda row: (row["started_at"], row["session_id"]))
    return [json.dumps(row, separators=(",", ":")) for row in sessions]


def _orders_of(shop_url: str | None, day: date) -> list[tuple[int, int, datetime]]:
    """The demo shop's orders placed on `day` (UTC); none when there is no shop."""
    if not shop_url:
        return []
    import psycopg2

    start = datetime.combine(day, time(), UTC)
    try:
        connection = psycopg2.connect(shop_url, application_name="elt-demo-marketing")
        with closing(connection) as conn, conn.cursor() as cur:
            cur.execute(
                "select order_id, customer_id, ordered_at from orders"
                " where ordered_at >= %s and ordered_at < %s and deleted_at is null"
                " order by order_id",
                (start, start + timedelta(days=1)),
            )
            return cur.fetchall()
    except psycopg2.Error:
        return []


def _write_campaigns(landing: Path, day: date, malformed: str | None) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    budgets: list[object] = [c[4] for c in CAMPAIGNS]
    budget_type: pa.DataType = pa.decimal128(12, 2)
    if malformed == "parquet_budget_as_text":  # an export that turned the budget into text
        budgets = [str(b) for b in budgets]
        budgets[5] = "n/a"
        budget_type = pa.string()
    table = pa.table(
        {
            "campaign_id": [c[0] for c in CAMPAIGNS],
            "campaign_name": [c[1] for c in CAMPAIGNS],
            "channel": [c[2] for c in CAMPAIGNS],
            "objective": [c[3] for c in CAMPAIGNS],
            "daily_budget": pa.array(budgets, budget_type),
            "started_on": pa.array([date(2024, 1, 1)] * len(CAMPAIGNS), pa.date32()),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    _write(
        landing / "campaigns" / f"campaigns_{day.isoformat()}.parquet", sink.getvalue().to_pybytes()
    )
    return len(CAMPAIGNS)
