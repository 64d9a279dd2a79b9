"""Settings: defaults < file < environment < flags."""

import pytest

from assistant.config import ConfigError, Settings, load_settings


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


def _file(tmp_path, text: str | bytes):
    f = tmp_path / "c.toml"
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text)
    return f


@pytest.mark.parametrize("text", ["port = \n", "[[[", b"\xff\xfeport = 1\n"])
def test_a_file_that_is_not_toml_says_so(tmp_path, text):
    f = _file(tmp_path, text)
    with pytest.raises(ConfigError, match="not a readable TOML file") as info:
        load_settings(f, env={})
    assert str(f) in str(info.value)


@pytest.mark.parametrize(
    "line, says",
    [
        # Of the wrong type: each was taken as it came (a server started with a string for its
        # port; a string of origins was split into one origin per character).
        ('port = "8080"', "port must be a whole number, not '8080'"),
        ("port = 80.5", "port must be a whole number"),
        ("suggest_max_tokens = true", "suggest_max_tokens must be a whole number, not True"),
        ('suggest_timeout_s = "2"', "suggest_timeout_s must be a number"),
        ("prefetch = 1", "prefetch must be true or false, not 1"),
        ("host = 127", "host must be a string, not 127"),
        ('allowed_origins = "http://a"', "allowed_origins must be a list of strings"),
        ("allowed_origins = [1]", "allowed_origins must be a list of strings"),
        # A number nothing can run with.
        ("debounce_min_ms = nan", "debounce_min_ms must be 0 or more, not nan"),
        ("keep_warm_s = -1.0", "keep_warm_s must be 0 or more, not -1.0"),
        ("max_frame_bytes = 0", "max_frame_bytes must be more than 0, not 0"),
        ("suggest_timeout_s = inf", "suggest_timeout_s must be more than 0, not inf"),
        ("port = 70000", "port must be 0-65535 (0 picks a free one), not 70000"),
    ],
)
def test_a_value_the_program_cannot_take_names_the_file_and_the_setting(tmp_path, line, says):
    f = _file(tmp_path, line + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(f, env={})
    assert str(info.value).startswith(f"{f}: {says}")


def test_the_error_names_where_the_number_came_from(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "none.toml", env={}, port=70000)
    assert str(info.value) == "--port must be 0-65535 (0 picks a free one), not 70000"
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "none.toml", env={"ASSISTANT_BUDGET_USD_DAY": "-3"})
    assert str(info.value) == "ASSISTANT_BUDGET_USD_DAY: budget_usd_day must be 0 or more, not -3.0"


def test_numbers_that_mean_off_and_whole_numbers_for_seconds_are_taken(tmp_path):
    f = _file(tmp_path, "keep_warm_s = 0\nsuggest_timeout_s = 3\nport = 0\ncold_pause_ms = 0.0\n")
    s = load_settings(f, env={})
    assert (s.keep_warm_s, s.suggest_timeout_s, s.port, s.cold_pause_ms) == (0, 3, 0, 0.0)


@pytest.mark.parametrize(
    "name, var, value, says",
    [
        ("offline", "ASSISTANT_OFFLINE", "gpu", "one of auto, local, statistical, not 'gpu'"),
        ("review_tier", "ASSISTANT_REVIEW_TIER", "opus", "one of auto, haiku, sonnet, not 'opus'"),
        ("checks", "ASSISTANT_CHECKS", "none", "one of auto, offline, off, not 'none'"),
    ],
)
def test_a_word_outside_its_choices_is_refused_by_name(tmp_path, name, var, value, says):
    # ASSISTANT_OFFLINE=gpu failed the server's startup with a traceback; the review tier fell
    # back to auto unannounced; ASSISTANT_CHECKS=none turned the checks on.
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "none.toml", env={var: value})
    assert str(info.value) == f"{var}: {name} must be {says}"
    f = _file(tmp_path, f'{name} = "{value}"\n')
    with pytest.raises(ConfigError, match=f"^{f}: {name} must be one of"):
        load_settings(f, env={})


def test_choices_are_taken_in_any_case_and_kept_in_lower_case(tmp_path):
    env = {
        "ASSISTANT_CHECKS": "OFF",
        "ASSISTANT_OFFLINE": " Statistical",
        "ASSISTANT_REVIEW_TIER": "Sonnet",
    }
    s = load_settings(tmp_path / "none.toml", env=env)
    assert (s.checks, s.offline, s.review_tier) == ("off", "statistical", "sonnet")


def test_a_model_the_price_table_does_not_know_is_refused(tmp_path):
    # It started, and every suggestion then failed at the API (or could not be costed).
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "none.toml", env={"ASSISTANT_SUGGEST_MODEL": "claude-haiku-9"})
    said = str(info.value)
    assert said.startswith("ASSISTANT_SUGGEST_MODEL: suggest_model 'claude-haiku-9' is not in")
    assert "claude-haiku-5-5" in said  # what it could be
    f = _file(tmp_path, 'review_model = "claude-sonnet-9"\n')
    with pytest.raises(ConfigError, match=f"^{f}: review_model 'claude-sonnet-9' is not in"):
        load_settings(f, env={})


@pytest.fixture
def models_table(monkeypatch):
    """Point ASSISTANT_MODELS at a file (the catalog is cached: cleared before and after)."""
    from assistant.pricing import default_catalog

    def use(path) -> None:
        monkeypatch.setenv("ASSISTANT_MODELS", str(path))
        default_catalog.cache_clear()

    yield use
    monkeypatch.delenv("ASSISTANT_MODELS", raising=False)
    default_catalog.cache_clear()


@pytest.mark.parametrize(
    "table, says",
    [
        (None, "No such file"),
        ("[models\n", "Expected ']'"),
        ('[roles]\nsuggest = "x"\n', "no 'models' in it"),
        ('[roles]\n[models.m]\ninput = "free"\n', "not a usable model table"),
    ],
)
def test_a_model_table_that_cannot_be_read_is_refused(tmp_path, models_table, table, says):
    path = tmp_path / "models.toml"
    if table is not None:
        path.write_text(table)
    models_table(path)
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path / "none.toml", env={})
    assert str(info.value).startswith(f"ASSISTANT_MODELS {path}: not a usable model table (")
    assert says in str(info.value)


@pytest.mark.parametrize("name", ["token", "api_key", "jwt_secret", "database_url", "admin_token"])
def test_a_secret_of_the_wrong_type_is_not_repeated_in_the_error(tmp_path, name):
    # The message goes to a terminal or a server's log; a secret written as a number is still one.
    f = _file(tmp_path, f"{name} = 8675309123456\n")
    with pytest.raises(ConfigError) as info:
        load_settings(f, env={})
    assert (
        str(info.value)
        == f"{f}: {name} must be a string, not the value given (a secret: not shown)"
    )
    assert "8675309123456" not in str(info.value)
