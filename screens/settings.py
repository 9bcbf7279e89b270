"""The UI's own settings, in labtui's config directory: the theme the user picked (remembered), and
a keymap file that rebinds keys by binding id (as posting does).

    # keymap.toml
    [keymap]
    "wizard.run" = "ctrl+r"          # "Save & continue / do it for me"
    "home.new" = "a,n"               # several keys: comma separated

The config directory is $LABTUI_CONFIG_DIR, else $LABTUI_HOME/config, else the platform's
user config directory for labtui."""

from __future__ import annotations

import json
import os
from pathlib import Path

from labtui.errors import LabError

KEYMAP_FILE = "keymap.toml"
SETTINGS_FILE = "ui.json"


def config_dir() -> Path:
    env = os.environ.get("LABTUI_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("LABTUI_HOME")
    if home:
        return Path(home).expanduser() / "config"
    from platformdirs import user_config_path

    return user_config_path("labtui")


def load_keymap(path: Path | None = None) -> dict[str, str]:
    """{binding id: keys} from keymap.toml; no file: {}. A broken file is a LabError naming it."""
    path = path or config_dir() / KEYMAP_FILE
    if not path.exists():
        return {}
    import tomllib  # only when there is a keymap: the first frame does not pay for it
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LabError(f"the keymap file {path} cannot be read: {exc}",
                       'fix it (a [keymap] table of "binding.id" = "keys"), or remove it to use the default keys') from exc
    table = data.get("keymap", data)
    out: dict[str, str] = {}
    bad = []
    for k, v in table.items():
        if isinstance(v, str) and v.strip():
            out[str(k)] = v.strip()
        elif isinstance(v, list) and all(isinstance(x, str) for x in v) and v:
            out[str(k)] = ",".join(x.strip() for x in v)
        else:
            bad.append(str(k))
    if bad:
        raise LabError(f"the keymap file {path}: {', '.join(bad)} has no key string",
                       'write each entry as "binding.id" = "ctrl+r" (several keys: "a,b")')
    return out


def _settings_path() -> Path:
    return config_dir() / SETTINGS_FILE


def load_settings() -> dict:
    try:
        data = json.loads(_settings_path().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_setting(key: str, value) -> None:
    """Remember one UI setting; a read-only config directory only loses the preference."""
    data = load_settings()
    data[key] = value
    path = _settings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
