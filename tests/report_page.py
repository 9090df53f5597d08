"""Reading an HTML report back as a user's eyes and a browser's loader would."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson

# Any reference a browser would fetch: src=/href= attributes and CSS url(...).
REMOTE = re.compile(
    rb"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//""", re.I
)


@dataclass
class Page:
    cards: dict[str, str] = field(default_factory=dict)
    tables: dict[str, list[list[str]]] = field(default_factory=dict)
    chips: dict[str, int] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def card(self, label: str) -> int:
        return int(self.cards[label].replace(",", ""))

    def table(self, table_id: str) -> list[list[str]]:
        return self.tables.get(table_id, [])


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._classes: list[str] = []
        self._text: list[str] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._in_head = False
        self._label: str | None = None
        self._script_id: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        css = attributes.get("class") or ""
        if tag == "table":
            self._table = attributes.get("id") or ""
            self.page.tables[self._table] = []
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr" and not self._in_head:
            self._row = []
        elif tag in ("td", "div", "span", "script", "b"):
            self._text = []
        if tag == "script":
            self._script_id = attributes.get("id")
        self._classes.append(css)

    def handle_endtag(self, tag: str) -> None:
        css = self._classes.pop() if self._classes else ""
        text = "".join(self._text).strip()
        if tag == "thead":
            self._in_head = False
        elif tag == "td" and self._row is not None:
            self._row.append(text)
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.page.tables[self._table].append(self._row)
            self._row = None
        elif tag == "div" and css == "label":
            self._label = text
        elif tag == "div" and css == "value" and self._label is not None:
            self.page.cards[self._label] = text
        elif tag == "span" and css.startswith("chip "):
            name, _, count = text.partition(" ")
            self.page.chips[name] = int(count.replace(",", ""))
        elif tag == "script" and self._script_id == "report-data":
            self.page.data = json.loads(text)

    def handle_data(self, data: str) -> None:
        self._text.append(data)


def read_page(path: Path) -> Page:
    reader = _Reader()
    reader.feed(path.read_text(encoding="utf-8"))
    return reader.page


def remote_references(path: Path) -> list[bytes]:
    return [match.group(0) for match in REMOTE.finditer(path.read_bytes())]


def records_of(path: Path) -> list[dict[str, Any]]:
    """The records of an output file, as flat dicts, read without asyncfetch's code."""
    if path.suffix == ".jsonl":
        return [_flat(orjson.loads(line)) for line in path.read_bytes().splitlines()]
    if path.suffix == ".sqlite":
        with sqlite3.connect(path) as connection:
            rows = connection.execute("SELECT record FROM results").fetchall()
        return [_flat(json.loads(row[0])) for row in rows]
    with path.open(newline="", encoding="utf-8") as file:
        return [
            {
                "url": row["url"],
                "status": int(row["status"]) if row["status"] else None,
                "ok": row["ok"] == "true",
                "kind": row["error_kind"] or None,
                "message": row["error_message"] or None,
                "attempts": int(row["attempts"]),
                "total_ms": float(row["total_ms"]),
            }
            for row in csv.DictReader(file)
        ]


def _flat(record: dict[str, Any]) -> dict[str, Any]:
    error = record["error"] or {}
    return {
        "url": record["url"],
        "status": record["status"],
        "ok": record["ok"],
        "kind": error.get("kind"),
        "message": error.get("message"),
        "attempts": record["attempts"],
        "total_ms": record["timings"]["total_ms"],
    }
