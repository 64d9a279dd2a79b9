"""Settings: defaults < file < environment < flags."""

import pytest

from assistant.config import Settings, load_settings


def test_defaults_take_models_from_the_price_table(tmp_path):
    s = load_settings(tmp_path / "none.toml", env={})
    assert s.suggest_model == "claude-haiku-5-5" and s.review_model == "claude-sonnet-5-5"
    assert not s.has_key and s.host == "127.0.0.1" and s.port == 8765


def test_file_then_env_then_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('port = 9000\ntoken = "from-file"\nallowed_origins = ["http://a"]\n')
    s = load_settings(f, env={"ASSISTANT_TOKEN": "from-env", "ANTHROPIC_API_KEY": "k"}, port=9100)
    assert (s.port, s.token, s.api_key, s.allowed_origins) == (9100, "from-env", "k", ("http://a",))


def test_unknown_setting_is_refused(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("prot = 1\n")
    with pytest.raises(ValueError, match="unknown setting"):
        load_settings(f, env={})


def test_secrets_are_not_in_repr():
    s = load_settings(
        "/nonexistent", env={"ANTHROPIC_API_KEY": "sk-secret", "ASSISTANT_TOKEN": "tkn-SECRET-42"}
    )
    assert "sk-secret" not in repr(s) and "tkn-SECRET-42" not in repr(s)


def test_ws_compression_reaches_uvicorn():
    from server.runner import uvicorn_config

    on = uvicorn_config(None, Settings(), "127.0.0.1", 0)
    off = uvicorn_config(None, Settings(ws_compression=False), "127.0.0.1", 0)
    assert on.ws_per_message_deflate is True and off.ws_per_message_deflate is False
