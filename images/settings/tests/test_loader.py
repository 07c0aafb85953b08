"""The loader: precedence, the three forms of every setting, unknown keys, required settings, errors
that name the key and its source, boolean switches, nested keys, and the generated README table."""

import argparse

import pytest
from kmm_settings import (
    REQUIRED,
    Boolean,
    Duration,
    Integer,
    ListOf,
    MappingOf,
    Setting,
    SettingError,
    Table,
    Text,
)
from kmm_settings.kinds import FALSE_WORDS, TRUE_WORDS
from kmm_settings.reference import END, START, markdown, render_readme

BOOL_WORDS = "/".join(TRUE_WORDS + FALSE_WORDS)

TABLE = Table(
    [
        Setting("window_size", Integer(min=1), 1000, "rows per window"),
        Setting("http_host", Text(), "0.0.0.0", "bind address"),
        Setting("reports_enabled", Boolean(), True, "write reports"),
        Setting("reference", Text(non_empty=True), REQUIRED, "reference data"),
        Setting("columns", ListOf(Text()), [], "segment columns"),
        Setting("prometheus_url", Text(), "http://localhost:9090", "Prometheus", key="prometheus.url"),
        Setting(
            "timeout", Duration(), "30s", "query timeout", key="prometheus.timeout", flag="--prom-timeout"
        ),
        Setting("resources", MappingOf(), {"cpu": "1"}, "job resources", key="job.resources"),
    ],
    env_prefix="APP_",
    config_env="APP_CONFIG",
)


def load(argv=(), environ=None, config=None, tmp_path=None, table=TABLE):
    parser = argparse.ArgumentParser(allow_abbrev=False)
    table.add_flags(parser)
    if config is not None:
        path = tmp_path / "config.yaml"
        path.write_text(config)
        argv = [*argv, "--config", str(path)]
    _, loaded = table.parse(parser, ["--reference", "r.parquet", *argv], environ or {})
    return loaded


def error(**kwargs) -> str:
    with pytest.raises(SettingError) as err:
        load(**kwargs)
    return str(err.value)


def test_every_setting_has_a_flag_an_environment_variable_and_a_config_key():
    forms = {s.name: (s.flag, s.env, s.key) for s in TABLE.settings}
    assert forms["window_size"] == ("--window-size", "APP_WINDOW_SIZE", "window_size")
    assert forms["prometheus_url"] == ("--prometheus-url", "APP_PROMETHEUS_URL", "prometheus.url")
    assert forms["timeout"] == ("--prom-timeout", "APP_TIMEOUT", "prometheus.timeout")


def test_snake_flag_style_keeps_kserve_like_flags():
    table = Table(
        [Setting("max_batch_size", Integer(), 1, "x")],
        env_prefix="",
        config_env="P_CONFIG",
        flag_style="snake",
    )
    assert table.settings[0].flag == "--max_batch_size" and table.settings[0].env == "MAX_BATCH_SIZE"


@pytest.mark.parametrize(
    ("argv", "environ", "config", "value", "source"),
    [
        (["--window-size", "5"], {"APP_WINDOW_SIZE": "6"}, "window_size: 7\n", 5, "flag --window-size"),
        ([], {"APP_WINDOW_SIZE": "6"}, "window_size: 7\n", 6, "env APP_WINDOW_SIZE"),
        ([], {"APP_WINDOW_SIZE": ""}, "window_size: 7\n", 7, "config file"),  # empty env is unset
        ([], {}, "window_size: 7\n", 7, "config file"),
        ([], {}, "", 1000, "default"),
    ],
)
def test_precedence_is_flag_then_environment_then_file_then_default(
    tmp_path, argv, environ, config, value, source
):
    loaded = load(argv, environ, config, tmp_path)
    assert loaded.values["window_size"] == value
    assert loaded.sources["window_size"].startswith(source)


def test_the_config_file_can_come_from_the_environment(tmp_path):
    (tmp_path / "c.yaml").write_text("http_host: 127.0.0.1\n")
    loaded = load(environ={"APP_CONFIG": str(tmp_path / "c.yaml")})
    assert loaded.values["http_host"] == "127.0.0.1"


def test_nested_keys_read_from_mappings_and_mapping_values_stay_whole(tmp_path):
    config = "prometheus:\n  url: http://p:9090\n  timeout: 1m\njob:\n  resources: {gpu: '1'}\n"
    loaded = load(config=config, tmp_path=tmp_path)
    assert loaded.values["prometheus_url"] == "http://p:9090"
    assert loaded.values["timeout"] == 60.0
    assert loaded.values["resources"] == {"gpu": "1"}


@pytest.mark.parametrize(
    ("argv", "environ", "config", "message"),
    [
        (
            ["--window-size", "0"],
            {},
            None,
            "invalid config window_size: must be >= 1, got 0 (from flag --window-size)",
        ),
        (
            [],
            {"APP_WINDOW_SIZE": "many"},
            None,
            "invalid config window_size: expected a whole number, got 'many' (from env APP_WINDOW_SIZE)",
        ),
        (
            [],
            {"APP_REPORTS_ENABLED": "ture"},
            None,
            f"invalid config reports_enabled: expected one of {BOOL_WORDS}, got 'ture' (from env APP_",
        ),
        (
            [],
            {},
            "reports_enabled: enabled\n",
            f"invalid config reports_enabled: expected one of {BOOL_WORDS}, got 'enabled' (from config file ",
        ),
        (
            [],
            {},
            "window_sise: 10\n",
            "invalid config window_sise: unknown key (known: columns, http_host, job, prometheus, ",
        ),
        (
            [],
            {},
            "prometheus:\n  urll: x\n",
            "invalid config prometheus.urll: unknown key (known: timeout, url) (from config file ",
        ),
        ([], {}, "prometheus: http://x\n", "invalid config prometheus: must be a mapping (from config file "),
        ([], {}, "- a\n", "invalid config --config: "),
        ([], {}, "key: [unclosed\n", "invalid config --config: "),
        ([], {}, "columns: {a: 1}\n", "invalid config columns: expected a list, got {'a': 1} (from "),
    ],
)
def test_a_bad_value_names_its_key_and_where_it_came_from(tmp_path, argv, environ, config, message):
    text = error(argv=argv, environ=environ, config=config, tmp_path=tmp_path)
    assert text.startswith(message), text
    assert "\n" not in text


def test_an_unreadable_config_file_is_named(tmp_path):
    text = error(environ={"APP_CONFIG": str(tmp_path / "absent.yaml")})
    assert text.startswith("invalid config --config: cannot read ") and text.endswith("(from env APP_CONFIG)")


def test_a_required_setting_says_all_three_ways_to_give_it():
    parser = argparse.ArgumentParser()
    TABLE.add_flags(parser)
    with pytest.raises(SettingError) as err:
        TABLE.load(parser.parse_args([]), {})
    assert str(err.value) == (
        "invalid config reference: is required (flag --reference, env APP_REFERENCE or config key reference)"
    )


def test_a_bad_default_is_caught_too():
    table = Table([Setting("n", Integer(min=1), 0, "x")], env_prefix="A_", config_env="A_CONFIG")
    with pytest.raises(SettingError, match=r"^invalid config n: must be >= 1, got 0 \(from default\)$"):
        table.load(argparse.Namespace(), {})


def test_checks_across_settings_name_the_source_of_the_key(tmp_path):
    loaded = load(["--window-size", "3"])
    assert str(loaded.error("window_size", "must be >= min_samples")) == (
        "invalid config window_size: must be >= min_samples (from flag --window-size)"
    )


@pytest.mark.parametrize(
    ("argv", "value"),
    [(["--reports-enabled"], True), (["--reports-enabled=false"], False), (["--reports-enabled=no"], False)],
)
def test_a_boolean_switch_alone_means_true_and_takes_a_value_after_an_equals_sign(argv, value):
    assert load(argv).values["reports_enabled"] is value


def test_a_boolean_switch_never_swallows_the_next_word():
    parser = argparse.ArgumentParser(allow_abbrev=False)
    TABLE.add_flags(parser)
    parser.add_argument("command")
    args, loaded = TABLE.parse(parser, ["--reports-enabled", "check", "--reference=r"], {})
    assert args.command == "check" and loaded.values["reports_enabled"] is True


def test_value_style_booleans_take_the_next_word_like_kserve_flags():
    table = Table(
        [Setting("allow_nan", Boolean(), False, "x")], env_prefix="", config_env="P_CONFIG", switches=False
    )
    parser = argparse.ArgumentParser()
    table.add_flags(parser)
    assert table.parse(parser, ["--allow-nan", "true"], {})[1].values["allow_nan"] is True


def test_duplicate_names_or_keys_are_a_programming_error():
    with pytest.raises(ValueError, match="duplicate"):
        Table(
            [Setting("a", Text(), "", "x"), Setting("b", Text(), "", "x", key="a")],
            env_prefix="",
            config_env="C",
        )


def test_help_lists_the_environment_variable_key_and_default(capsys):
    parser = argparse.ArgumentParser()
    TABLE.add_flags(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--window-size VALUE rows per window [env APP_WINDOW_SIZE] (config: window_size; default 1000)"
        in text
    )
    assert "[env APP_CONFIG]" in text


def test_the_readme_table_is_generated_between_its_markers():
    readme = f"# app\n\nintro\n\n{START}\nstale\n{END}\n\nafter\n"
    rendered = render_readme(TABLE, readme)
    assert rendered.startswith("# app\n\nintro\n\n" + START + "\n| flag | environment |")
    assert rendered.endswith(END + "\n\nafter\n")
    assert (
        "| `--window-size` | `APP_WINDOW_SIZE` | `window_size` | `1000` | integer >= 1 | rows per window |"
        in rendered
    )
    assert "| `--reference` | `APP_REFERENCE` | `reference` | `required` |" in rendered
    assert render_readme(TABLE, rendered) == rendered
    assert markdown(TABLE).count("\n") == len(TABLE.settings) + 3
    with pytest.raises(ValueError, match="must hold"):
        render_readme(TABLE, "# no markers\n")
