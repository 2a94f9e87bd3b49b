"""Settings: defaults < TOML file < CIRRUS_* environment < explicit overrides."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from cirrus.config import FakeHostSettings, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CIRRUS_* setting from the developer's shell may leak into these tests."""
    for name in list(os.environ):
        if name.startswith("CIRRUS_"):
            monkeypatch.delenv(name)


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cirrus.toml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_environment() -> None:
    s = load_settings()
    assert s.api_port == 8774
    assert s.api_host == "127.0.0.1"
    assert s.quota_instances == 10
    assert s.fake == FakeHostSettings()
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.effective_database_url.endswith("/cirrus-data/cirrus.db")
    assert s.effective_public_url == "http://127.0.0.1:8774"


def test_file_overrides_defaults(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'api_port = 9000\nregion = "Mars"\ncpu_allocation_ratio = 2.5\n')
    s = load_settings(path)
    assert (s.api_port, s.region, s.cpu_allocation_ratio) == (9000, "Mars", 2.5)
    assert s.quota_instances == 10  # untouched keys keep their default


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, "api_port = 9000\nquota_cores = 40\n")
    monkeypatch.setenv("CIRRUS_API_PORT", "9100")
    s = load_settings(path)
    assert s.api_port == 9100
    assert s.quota_cores == 40


def test_explicit_overrides_win_over_environment(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, "api_port = 9000\n")
    monkeypatch.setenv("CIRRUS_API_PORT", "9100")
    s = load_settings(path, api_port=9200)
    assert s.api_port == 9200


def test_none_overrides_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRRUS_API_PORT", "9100")
    assert load_settings(api_port=None, api_host=None).api_port == 9100


def test_config_file_from_cirrus_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRRUS_CONFIG", str(write_toml(tmp_path, 'log_level = "DEBUG"\n')))
    assert load_settings().log_level == "DEBUG"


def test_nested_fake_table(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[fake]\ncount = 7\nboot_delay = 0.25\n")
    s = load_settings(path)
    assert s.fake.count == 7
    assert s.fake.boot_delay == 0.25
    assert s.fake.vcpus == FakeHostSettings().vcpus


def test_fake_count_from_environment_overrides_file(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_toml(tmp_path, "[fake]\ncount = 7\n")
    monkeypatch.setenv("CIRRUS_FAKE_COUNT", "12")
    monkeypatch.setenv("CIRRUS_FAKE_FAILURE_RATE", "0.5")
    s = load_settings(path)
    assert s.fake.count == 12
    assert s.fake.failure_rate == 0.5


def test_environment_values_take_the_type_of_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRRUS_QUOTA_INSTANCES", "500")
    monkeypatch.setenv("CIRRUS_RPC_TIMEOUT", "2")
    monkeypatch.setenv("CIRRUS_DATA_DIR", "/srv/cirrus")
    s = load_settings()
    assert s.quota_instances == 500 and isinstance(s.quota_instances, int)
    assert s.rpc_timeout == 2.0 and isinstance(s.rpc_timeout, float)
    assert s.data_dir == Path("/srv/cirrus")


def test_a_number_setting_with_a_non_number_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIRRUS_API_PORT", "eighty")
    with pytest.raises(ValueError):
        load_settings()


def test_a_scalar_where_a_table_belongs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fake must be a table"):
        load_settings(write_toml(tmp_path, "fake = 3\n"))


def test_unknown_keys_in_the_file_are_ignored(tmp_path: Path) -> None:
    s = load_settings(write_toml(tmp_path, "no_such_option = 1\napi_port = 9001\n"))
    assert s.api_port == 9001


def test_database_url_and_public_url_when_set(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path, database_url="postgresql://db/cirrus",
                      public_url="https://cloud.example/")
    assert s.effective_database_url == "postgresql://db/cirrus"
    assert s.effective_public_url == "https://cloud.example"
    assert s.effective_image_dir == tmp_path / "images"


def _sample(default: object) -> tuple[str, object]:
    """An environment value for a setting of this default's type, and what it must become."""
    if isinstance(default, bool):
        return ("false", False) if default else ("true", True)
    if isinstance(default, list):
        return " a, b ,,c", ["a", "b", "c"]
    if isinstance(default, dict):
        return " a=/x, b = /y ", {"a": "/x", "b": "/y"}
    if isinstance(default, int | float):
        return "7", type(default)(7)
    if isinstance(default, Path):
        return "/x", Path("/x")
    return "v", "v"


def test_every_setting_has_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each field can be set as CIRRUS_<NAME> (nested: CIRRUS_FAKE_<NAME>), typed like its
    default."""
    expected = {}
    for f in dataclasses.fields(Settings):
        if f.name == "fake":
            continue
        text, expected[f.name] = _sample(getattr(Settings(), f.name))
        monkeypatch.setenv(f"CIRRUS_{f.name.upper()}", text)
    for f in dataclasses.fields(FakeHostSettings):
        text, expected[f"fake.{f.name}"] = _sample(getattr(FakeHostSettings(), f.name))
        monkeypatch.setenv(f"CIRRUS_FAKE_{f.name.upper()}", text)
    s = load_settings()
    for name, value in expected.items():
        target = s.fake if name.startswith("fake.") else s
        got = getattr(target, name.removeprefix("fake."))
        assert got == value and type(got) is type(value), name


def _fields_of_type(kind: type) -> list[str]:
    return [f.name for f in dataclasses.fields(Settings)
            if isinstance(getattr(Settings(), f.name), kind)]


@pytest.mark.parametrize("text,value", [("1", True), ("yes", True), ("ON", True),
                                        ("0", False), ("false", False), ("off", False)])
def test_boolean_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, text: str,
                                               value: bool) -> None:
    names = _fields_of_type(bool)
    if not names:
        pytest.skip("no boolean setting exists")
    monkeypatch.setenv(f"CIRRUS_{names[0].upper()}", text)
    assert getattr(load_settings(), names[0]) is value


def test_a_boolean_setting_with_another_word_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    names = _fields_of_type(bool)
    if not names:
        pytest.skip("no boolean setting exists")
    monkeypatch.setenv(f"CIRRUS_{names[0].upper()}", "maybe")
    with pytest.raises(ValueError, match="maybe"):
        load_settings()
    monkeypatch.delenv(f"CIRRUS_{names[0].upper()}")
    with pytest.raises(ValueError, match=names[0]):
        load_settings(write_toml(tmp_path, f"{names[0]} = 3\n"))


def test_list_settings_from_file_and_environment(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    names = _fields_of_type(list)
    if not names:
        pytest.skip("no list setting exists")
    name = names[0]
    s = load_settings(write_toml(tmp_path, f'{name} = ["amqp://a", " amqp://b "]\n'))
    assert getattr(s, name) == ["amqp://a", "amqp://b"]
    monkeypatch.setenv(f"CIRRUS_{name.upper()}", "amqp://c,amqp://d")
    assert getattr(load_settings(), name) == ["amqp://c", "amqp://d"]
    with pytest.raises(ValueError, match=name):
        load_settings(write_toml(tmp_path, f"{name} = [1, 2]\n"))


def test_configuration_doc_lists_every_setting() -> None:
    """docs/configuration.md names every option with its environment variable."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    missing = [f"{f.name} (CIRRUS_{f.name.upper()})" for f in dataclasses.fields(Settings)
               if f.name != "fake" and (f"`{f.name}`" not in doc
                                        or f"CIRRUS_{f.name.upper()}" not in doc)]
    missing += [f"fake.{f.name} (CIRRUS_FAKE_{f.name.upper()})"
                for f in dataclasses.fields(FakeHostSettings)
                if f"`fake.{f.name}`" not in doc or f"CIRRUS_FAKE_{f.name.upper()}" not in doc]
    assert missing == [], f"document these in docs/configuration.md: {missing}"
