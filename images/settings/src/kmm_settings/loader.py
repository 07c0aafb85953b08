"""The settings table and its loader: every setting has a flag, an environment variable and a config key.

Precedence, per setting: flag > environment variable > config file > default. An environment variable
set to the empty string counts as unset (Kubernetes renders `value: ""` for an empty value). Every raw
value, the defaults included, goes through the setting's kind (kinds.py), so a bad value fails at start
with SettingError: one line naming the config key and where the value came from. The config file is
YAML; dotted keys (`prometheus.url`) are nested mappings in it, and a key the table does not know is
refused, so a typo never falls back to a default.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from .kinds import Boolean

REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()


class SettingError(ValueError):
    """A setting is unknown, missing or invalid; the message is one line naming its key and source."""

    def __init__(self, key: str, problem: str, source: str = ""):
        super().__init__(f"invalid config {key}: {problem}" + (f" (from {source})" if source else ""))
        self.key, self.problem, self.source = key, problem, source


@dataclass(frozen=True)
class Setting:
    """One row of the table. Empty flag, env and key are derived from the name by the Table."""

    name: str  # the attribute the image reads, snake_case
    kind: Any  # a kinds.* instance: parse(raw) -> value, describe() -> text
    default: Any
    help: str
    flag: str = ""
    env: str = ""
    key: str = ""  # dotted for nested keys of the config file


@dataclass(frozen=True)
class Loaded:
    """The parsed values by setting name, and where each came from (for errors found later)."""

    values: dict[str, Any]
    sources: dict[str, str]
    keys: dict[str, str]

    def error(self, name: str, problem: str) -> SettingError:
        """For checks across settings (min_samples <= window_size): names the key and its source."""
        return SettingError(self.keys[name], problem, self.sources[name])


class Table:
    """The settings of one image: builds its flags, reads the config file, resolves precedence."""

    def __init__(
        self,
        settings: Iterable[Setting],
        *,
        env_prefix: str,
        config_env: str,
        flag_style: str = "kebab",  # --http-port; "snake": --http_port (KServe's model server style)
        switches: bool = True,  # a boolean flag alone means true (--dry-run); False: --flag true|false
    ):
        self.config_flag, self.config_env, self.switches = "--config", config_env, switches
        self.settings = [self._derive(s, env_prefix, flag_style) for s in settings]
        self.by_name = {s.name: s for s in self.settings}
        self.by_key = {s.key: s for s in self.settings}
        self._sections = {k.rsplit(".", n)[0] for k in self.by_key for n in range(1, k.count(".") + 1)}
        if len(self.by_name) != len(self.settings) or len(self.by_key) != len(self.settings):
            raise ValueError("settings table: duplicate name or key")

    @staticmethod
    def _derive(setting: Setting, env_prefix: str, flag_style: str) -> Setting:
        words = setting.name.replace("_", "-" if flag_style == "kebab" else "_")
        return replace(
            setting,
            flag=setting.flag or f"--{words}",
            env=setting.env or f"{env_prefix}{setting.name.upper()}",
            key=setting.key or setting.name,
        )

    # --- flags ----------------------------------------------------------------------------------
    def add_flags(self, parser: argparse._ActionsContainer, names: Iterable[str] | None = None) -> None:
        """Our flags, all strings until load() parses them; absent ones stay absent (SUPPRESS)."""
        parser.add_argument(
            self.config_flag,
            dest="config",
            metavar="FILE",
            default=argparse.SUPPRESS,
            help=f"YAML config file with any of the keys below [env {self.config_env}]",
        )
        for setting in self.settings if names is None else [self.by_name[n] for n in names]:
            text = (
                f"{setting.help} [env {setting.env}] (config: {setting.key}; default {show(setting.default)})"
            )
            text = text.replace("%", "%%")  # argparse formats help with %
            parser.add_argument(
                setting.flag, dest=setting.name, metavar="VALUE", default=argparse.SUPPRESS, help=text
            )

    def normalize_argv(self, argv: Sequence[str]) -> list[str]:
        """A boolean switch given alone becomes `--flag=true`, so it never swallows the next word."""
        if not self.switches:
            return list(argv)
        switches = {s.flag for s in self.settings if isinstance(s.kind, Boolean)}
        return [f"{arg}=true" if arg in switches else arg for arg in argv]

    def parse(
        self, parser: argparse.ArgumentParser, argv: Sequence[str] | None, environ: Mapping[str, str]
    ) -> tuple[argparse.Namespace, Loaded]:
        """parser.parse_args on the normalized argv, then load(): (argparse namespace, Loaded)."""
        args = parser.parse_args(self.normalize_argv(list(argv) if argv is not None else sys.argv[1:]))
        return args, self.load(args, environ)

    # --- resolution -----------------------------------------------------------------------------
    def load(self, args: argparse.Namespace, environ: Mapping[str, str]) -> Loaded:
        """Every setting's value by precedence; raises SettingError on the first bad one."""
        config_path = vars(args).get("config") or environ.get(self.config_env) or None
        file_values = self._read_file(config_path, "flag" if vars(args).get("config") else "env")
        values, sources = {}, {}
        for setting in self.settings:
            raw, source = self._raw(setting, args, environ, file_values, config_path)
            if raw is REQUIRED:
                where = f"flag {setting.flag}, env {setting.env} or config key {setting.key}"
                raise SettingError(setting.key, f"is required ({where})")
            try:
                values[setting.name] = setting.kind.parse(raw)
            except ValueError as err:
                raise SettingError(setting.key, str(err), source) from None
            sources[setting.name] = source
        return Loaded(values, sources, {s.name: s.key for s in self.settings})

    def _raw(
        self,
        setting: Setting,
        args: argparse.Namespace,
        environ: Mapping[str, str],
        file_values: Mapping[str, Any],
        config_path: str | None,
    ) -> tuple[Any, str]:
        """The raw value with the highest precedence, and where it came from."""
        if setting.name in vars(args):
            return getattr(args, setting.name), f"flag {setting.flag}"
        if environ.get(setting.env, "") != "":
            return environ[setting.env], f"env {setting.env}"
        if setting.key in file_values:
            return file_values[setting.key], f"config file {config_path}"
        return setting.default, "default"

    # --- config file ----------------------------------------------------------------------------
    def _read_file(self, path: str | None, given_by: str) -> dict[str, Any]:
        if not path:
            return {}
        source = f"flag {self.config_flag}" if given_by == "flag" else f"env {self.config_env}"
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as err:
            raise SettingError(
                self.config_flag, f"cannot read {path}: {err.strerror or err}", source
            ) from None
        except yaml.YAMLError as err:
            first_line = str(err).splitlines()[0]
            raise SettingError(self.config_flag, f"{path} is not valid YAML: {first_line}", source) from None
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise SettingError(self.config_flag, f"{path} must hold a mapping at the top level", source)
        return self._flatten(data, "", f"config file {path}")

    def _flatten(self, data: dict[str, Any], prefix: str, source: str) -> dict[str, Any]:
        """Nested mappings to dotted keys, refusing keys that are neither settings nor sections."""
        flat: dict[str, Any] = {}
        for key, value in data.items():
            dotted = f"{prefix}{key}"
            if dotted in self.by_key:
                flat[dotted] = value
            elif dotted in self._sections:
                if not isinstance(value, dict):
                    raise SettingError(dotted, "must be a mapping", source)
                flat.update(self._flatten(value, f"{dotted}.", source))
            else:
                known = sorted({k[len(prefix) :].split(".")[0] for k in self.by_key if k.startswith(prefix)})
                raise SettingError(dotted, f"unknown key (known: {', '.join(known)})", source)
        return flat


def show(default: Any) -> str:
    if default is REQUIRED:
        return "required"
    if default is None:
        return "none"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, list | dict):
        return yaml.safe_dump(default, default_flow_style=True, width=1 << 16).strip()
    return '""' if default == "" else str(default)
