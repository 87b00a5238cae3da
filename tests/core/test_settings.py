"""Settings and reaching the database: bad values fail at start with one line naming the variable."""

from __future__ import annotations

import pytest

from bifrost_core.bootstrap import initialise, open_database
from bifrost_core.config import get_settings, load_settings
from bifrost_core.db.database import Database
from bifrost_core.errors import ConfigError, DatabaseUnavailable


def test_defaults_live_in_the_home(bifrost_env):
    settings = load_settings()
    home = bifrost_env.resolve()
    assert settings.home == home
    assert settings.database == f"sqlite:///{home / 'bifrost.db'}"
    assert settings.tier_roots == {
        "hot": str(home / "storage" / "hot"),
        "archive": str(home / "storage" / "archive"),
    }


def test_home_defaults_to_dot_bifrost_in_the_user_folder(bifrost_env, monkeypatch, tmp_path):
    monkeypatch.delenv("BIFROST_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert load_settings().home == (tmp_path / "user" / ".bifrost").resolve()


def test_values_come_from_the_environment_and_a_dot_env_file(bifrost_env, monkeypatch):
    # bifrost_env runs the test in a fresh folder, where a .env file is read.
    (bifrost_env.parent / ".env").write_text("BIFROST_HOT_ROOT=s3://bucket/hot\nBIFROST_DB_POOL_SIZE=7\n")
    monkeypatch.setenv("BIFROST_DB_POOL_SIZE", "9")  # the environment wins over .env
    settings = load_settings()
    assert settings.tier_roots["hot"] == "s3://bucket/hot"
    assert settings.db_pool_size == 9


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BIFROST_DATABASE_URL", "garbage", "not a database URL"),
        ("BIFROST_DATABASE_URL", "mysql://user@host/db", "unsupported database 'mysql'"),
        ("BIFROST_DATABASE_URL", "oracle://user@host/db", "unsupported database 'oracle'"),
        # Drivers that are not installed or not synchronous would fail later with a traceback.
        ("BIFROST_DATABASE_URL", "postgresql+asyncpg://user@host/db", "unsupported driver"),
        ("BIFROST_DATABASE_URL", "postgresql+psycopg2://user@host/db", "unsupported driver"),
        ("BIFROST_DATABASE_URL", "sqlite+aiosqlite:///x.db", "unsupported driver"),
        ("BIFROST_STORAGE_OPTIONS", "{not json", "not valid JSON"),
        ("BIFROST_STORAGE_OPTIONS", '{"s3://bucket": "profile"}', "valid dictionary"),
        ("BIFROST_STORAGE_OPTIONS", '{"/mnt/hot": {}}', "'/mnt/hot' is not a URL prefix"),
        ("BIFROST_STORAGE_ALLOWED_ROOTS", "mnt/hot", "'mnt/hot' is not an absolute path or a URL"),
        ("BIFROST_STORAGE_ALLOWED_ROOTS", '["/mnt/hot"', "not a valid JSON list"),
        ("BIFROST_STORAGE_ALLOWED_ROOTS", "/mnt/../etc", "'..' path segment"),
        ("BIFROST_USER", "jane doe", "String should match pattern"),
        ("BIFROST_USER", "-admin", "String should match pattern"),
        ("BIFROST_API_TRUSTED_PROXIES", "10.0.0.1,proxy.local", "'proxy.local' is not an IP address"),
        # uvicorn would read a network with host bits set as a name that matches nothing.
        ("BIFROST_API_TRUSTED_PROXIES", "10.0.0.1/8", "'10.0.0.1/8' is not an IP address or network"),
        ("BIFROST_DATABASE_REPLICA_URLS", "garbage", "not a database URL"),
        ("BIFROST_DATABASE_REPLICA_URLS", "postgresql://u@r1/db,sqlite:///x.db", "a read replica is"),
        ("BIFROST_DATABASE_REPLICA_URLS", "postgresql+asyncpg://u@r1/db", "unsupported driver"),
        ("BIFROST_DATABASE_REPLICA_URLS", '["postgresql://u@r1/db"', "not a valid JSON list"),
        ("BIFROST_DATABASE_REPLICA_MAX_LAG_SECONDS", "-1", "greater than or equal to 0"),
        ("BIFROST_DATABASE_REPLICA_MAX_LAG_SECONDS", "soon", "valid number"),
    ],
)
def test_an_invalid_value_is_one_line_naming_the_variable(bifrost_env, monkeypatch, variable, value, message):
    monkeypatch.setenv("BIFROST_DATABASE_URL", "postgresql://u@primary/db")  # what replicas need
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as failure:
        load_settings()
    text = str(failure.value)
    assert text.startswith(f"{variable}: ")
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    "url", ["postgresql://u@h/db", "postgresql+psycopg://u@h/db", "sqlite:///x.db", "sqlite+pysqlite:///x.db"]
)
def test_supported_database_urls(bifrost_env, monkeypatch, url):
    monkeypatch.setenv("BIFROST_DATABASE_URL", url)
    assert load_settings().database == url


@pytest.mark.parametrize(
    ("variable", "value"),
    [("BIFROST_DB_POOL_SIZE", "0"), ("BIFROST_DB_POOL_SIZE", "many"), ("BIFROST_LOG_LEVEL", "LOUD")],
)
def test_other_invalid_settings_name_their_variable(bifrost_env, monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        load_settings()


def test_storage_options_go_to_the_longest_prefix_a_url_is_under(bifrost_env, monkeypatch):
    monkeypatch.setenv(
        "BIFROST_STORAGE_OPTIONS",
        '{"s3://": {"endpoint_url": "http://minio:9000"}, "s3://show/": {"profile": "show"},'
        ' "s3://show/archive": {"profile": "vault"}}',
    )
    settings = load_settings()
    assert settings.storage_options_for("s3://show/archive") == {"profile": "vault"}
    assert settings.storage_options_for("s3://show/archive/2026") == {"profile": "vault"}
    assert settings.storage_options_for("s3://show/hot") == {"profile": "show"}
    # Whole segments only: s3://showreel is not under s3://show.
    assert settings.storage_options_for("s3://showreel/hot") == {"endpoint_url": "http://minio:9000"}
    assert settings.storage_options_for("gs://show/hot") == {}
    assert settings.storage_options_for("/mnt/hot") == {}
    settings.storage_options_for("s3://show/hot")["profile"] = "changed"  # a copy each time
    assert settings.storage_options_for("s3://show/hot") == {"profile": "show"}


def test_storage_options_stay_out_of_the_settings_repr(bifrost_env, monkeypatch):
    monkeypatch.setenv("BIFROST_STORAGE_OPTIONS", '{"s3://vendor": {"key": "AKIA", "secret": "hush"}}')
    settings = load_settings()
    assert settings.storage_options_for("s3://vendor/drop")["secret"] == "hush"
    assert "hush" not in repr(settings)


def test_the_cli_token_stays_out_of_the_settings_repr(bifrost_env, monkeypatch):
    monkeypatch.setenv("BIFROST_TOKEN", "bft_secret")
    monkeypatch.setenv("BIFROST_USER", "jane.doe")
    settings = load_settings()
    assert (settings.token, settings.user) == ("bft_secret", "jane.doe")
    assert "bft_secret" not in repr(settings)


def test_get_settings_is_cached(bifrost_env):
    assert get_settings() is get_settings()


def test_unreachable_postgresql_is_one_line(bifrost_env, monkeypatch):
    monkeypatch.setenv("BIFROST_DATABASE_URL", "postgresql+psycopg://bifrost:s3cret@127.0.0.1:1/bifrost")
    with pytest.raises(DatabaseUnavailable) as failure:
        open_database(load_settings())
    text = str(failure.value)
    assert text.startswith(
        "cannot reach the database at postgresql+psycopg://bifrost:***@127.0.0.1:1/bifrost"
    )
    assert "\n" not in text and "s3cret" not in text
    assert failure.value.status_code == 503


def test_sqlite_file_in_a_folder_that_cannot_exist_is_unavailable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DatabaseUnavailable) as failure:
        Database(f"sqlite:///{blocker / 'sub' / 'bifrost.db'}").check()
    assert "\n" not in str(failure.value)


def test_initialise_makes_the_home_and_the_first_admin_once(bifrost_env):
    settings = load_settings()
    first = initialise(settings)
    try:
        assert first.admin_token is not None and first.admin_token.token.startswith("bft_")
        assert (bifrost_env / "bifrost.db").exists()
    finally:
        first.database.dispose()
    second = initialise(settings)
    second.database.dispose()
    assert second.admin_token is None  # a rerun finds the admin and issues nothing new


@pytest.mark.parametrize(
    "value", ["/mnt/hot/, s3://Studio-Archive/x/", '["/mnt/hot", "S3://Studio-Archive/x"]']
)
def test_allowed_storage_roots_are_a_list_or_comma_separated(bifrost_env, monkeypatch, value):
    monkeypatch.setenv("BIFROST_STORAGE_ALLOWED_ROOTS", value)
    assert load_settings().allowed_storage_roots == ["/mnt/hot", "s3://Studio-Archive/x"]


def test_allowed_storage_roots_default_to_the_studio_roots_and_the_home_storage(bifrost_env, monkeypatch):
    monkeypatch.setenv("BIFROST_ARCHIVE_ROOT", "s3://archive/bifrost")
    home = bifrost_env.resolve()
    assert load_settings().allowed_storage_roots == [
        str(home / "storage" / "hot"),
        "s3://archive/bifrost",
        str(home / "storage"),
    ]


def test_replicas_need_a_postgresql_primary(bifrost_env, monkeypatch):
    monkeypatch.setenv("BIFROST_DATABASE_REPLICA_URLS", "postgresql://u@r1/db, postgresql://u@r2/db")
    with pytest.raises(ConfigError) as failure:
        load_settings()
    assert str(failure.value) == (
        "BIFROST_DATABASE_REPLICA_URLS needs BIFROST_DATABASE_URL to name their PostgreSQL primary"
    )
    monkeypatch.setenv("BIFROST_DATABASE_URL", "postgresql://u@primary/db")
    assert load_settings().database_replica_urls == ["postgresql://u@r1/db", "postgresql://u@r2/db"]
