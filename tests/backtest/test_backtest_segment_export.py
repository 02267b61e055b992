"""A Segment (or RudderStack) export replays as the server's Segment source would apply it: the
e-commerce spec's events by the same mapping (`[segment.events]` from the server's config when
given), the user by userId else anonymousId, identifies adding no event; a message the server
would refuse is a skipped row with its reason."""

import json
from pathlib import Path

import pytest
from backtest_cases import backtest

from server.backtest.history import SEGMENT_TYPES
from server.ingest.segment import TYPES

T0 = "2024-03-04T10:00:00.000Z"


def _export(path: Path, messages: list[dict]) -> Path:
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    return path


def _message(i: int, kind: str, **fields) -> dict:
    return {"type": kind, "messageId": f"m{i}", "timestamp": T0, **fields}


def test_an_export_replays_with_the_spec_s_mapping(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    export = _export(tmp_path / "export.jsonl", [
        _message(1, "identify", userId="u1", traits={"email": "u1@example.com"}),
        _message(2, "page", anonymousId="a2", properties={"path": "/product/x"}),
        _message(3, "track", userId="u1", event="Product Added",
                 properties={"product_id": "sku-1", "price": 19.99, "cart_id": "c1"}),
        _message(4, "track", userId="u2", event="Product Added",
                 properties={"sku": "sku-2", "cart_id": "c2"}),
        {**_message(5, "track", userId="u2", event="Order Completed",
                    properties={"order_id": "o2", "revenue": 20, "currency": "EUR"}),
         "timestamp": "2024-03-04T10:30:00.000Z"},
        _message(6, "track", anonymousId="a3", event=""),  # refused: no event name
    ])
    run = backtest(capsys, export, "--sends", str(tmp_path / "sends.jsonl"))
    assert run.code == 0
    cart = run.summary["sequences"]["cart-recovery"]
    assert (cart["entered"], cart["sent"], cart["converted"]) == (2, 1, 1)  # u2 bought in time
    sends = [json.loads(line) for line in (tmp_path / "sends.jsonl").read_text().splitlines()]
    assert [(s["user"], s["sequence"]) for s in sends if s["status"] == "sent"] == [
        ("u1", "cart-recovery")]
    assert "a Segment message the server would refuse: event: a track needs an event name" in (
        run.err)


def test_the_config_s_mapping_names_the_events(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    export = _export(tmp_path / "export.jsonl", [
        _message(1, "track", userId="u1", event="Added To Bag",
                 properties={"sku": "sku-1", "cart_id": "c1"})])
    config = tmp_path / "server.toml"
    config.write_text('[segment.events]\n"Added To Bag" = "cart_add"\n')
    plain = backtest(capsys, export)
    mapped = backtest(capsys, export, "--config", str(config))
    assert plain.summary["sequences"]["cart-recovery"]["entered"] == 0
    assert mapped.summary["sequences"]["cart-recovery"]["entered"] == 1


def test_the_history_reader_knows_the_same_message_types() -> None:
    assert SEGMENT_TYPES == TYPES
