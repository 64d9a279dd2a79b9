"""Prices come from the data file and every usage field is charged at its own rate."""

import dataclasses

import pytest

from assistant.pricing import (
    Ledger,
    Usage,
    cost_usd,
    default_catalog,
    estimate_tokens,
    load_catalog,
)


def test_haiku_prices_per_million_tokens():
    p = default_catalog().price("claude-haiku-4-5")
    assert (p.input, p.output, p.cache_write_5m, p.cache_read) == (1.0, 5.0, 1.25, 0.10)
    assert p.min_cacheable_tokens == 4096


def test_cost_charges_each_field_at_its_rate():
    usage = Usage(
        input_tokens=1_000,
        output_tokens=200,
        cache_creation_input_tokens=4_000,
        cache_read_input_tokens=10_000,
    )
    expected = (1_000 * 1.0 + 200 * 5.0 + 4_000 * 1.25 + 10_000 * 0.10) / 1e6
    assert cost_usd("claude-haiku-4-5", usage) == pytest.approx(expected)
    assert cost_usd("claude-haiku-4-5", usage, cache_ttl="1h") == pytest.approx(
        expected + 4_000 * (2.0 - 1.25) / 1e6
    )


def test_sonnet_is_three_times_haiku_and_offline_is_free():
    u = Usage(1_000_000, 0)
    assert cost_usd("claude-sonnet-4-6", u) == pytest.approx(3.0)
    assert cost_usd("offline-statistical", Usage(10**6, 10**6)) == 0.0


def test_roles_name_models_that_have_prices():
    cat = default_catalog()
    for model in cat.roles.values():
        cat.price(model)
    assert cat.price("claude-sonnet-4-5").retires == "2026-11-30"
    assert cat.roles["review"] != "claude-sonnet-4-5"


def test_unknown_model_is_a_clear_error():
    with pytest.raises(KeyError, match="no price for model"):
        cost_usd("claude-unknown", Usage(1, 1))


def test_price_table_can_be_replaced(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text(
        '[roles]\nsuggest="x"\nreview="x"\n[models.x]\nfamily="t"\ninput=2.0\noutput=4.0\n'
        "cache_write_5m=2.5\ncache_write_1h=4.0\ncache_read=0.2\n"
    )
    cat = load_catalog(f)
    assert cost_usd("x", Usage(10**6, 10**6), cat) == pytest.approx(6.0)


def test_ledger_totals_and_estimates():
    ledger = Ledger()
    ledger.add("claude-haiku-4-5", Usage(100, 10))
    ledger.add("claude-haiku-4-5", Usage(100, 5, estimated=True))
    assert ledger.total == Usage(200, 15, estimated=True)
    assert ledger.requests == 2 and ledger.estimated_requests == 1
    assert ledger.total_cost == pytest.approx((200 * 1 + 15 * 5) / 1e6)


def test_estimate_tokens_is_about_four_chars_each():
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("x" * 400) == 100


def test_usage_to_dict_has_every_field():
    u = Usage(1, 2, 3, 4, estimated=True)
    assert u.to_dict() == dataclasses.asdict(u)
