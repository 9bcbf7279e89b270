"""Read clouds.yaml the way openstacksdk finds it, without contacting any cloud."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labtui.errors import LabError

ENV_CLOUD = "envvars"


def candidate_files(filename: str = "clouds.yaml", env: str = "OS_CLIENT_CONFIG_FILE") -> list[Path]:
    """Where openstacksdk looks for `filename` (clouds.yaml; secure.yaml with OS_CLIENT_SECURE_FILE), in order."""
    files: list[Path] = []
    explicit = os.environ.get(env)
    if explicit:
        files.append(Path(explicit).expanduser())
    files += [
        Path.cwd() / filename,
        Path.home() / ".config" / "openstack" / filename,
        Path("/etc/openstack") / filename,
    ]
    return files


@dataclass
class CloudsConfig:
    path: Path | None
    clouds: dict[str, dict[str, Any]] = field(default_factory=dict)
    default: str | None = None

    @property
    def names(self) -> list[str]:
        return list(self.clouds)

    def describe(self, name: str) -> str:
        """Where the cloud lives, with no secret: `auth_url (project, region)`."""
        cfg = self.clouds.get(name, {})
        auth = cfg.get("auth", {}) or {}
        bits = [str(auth.get("auth_url") or cfg.get("auth_url") or "?")]
        extra = [str(x) for x in (auth.get("project_name"), cfg.get("region_name")) if x]
        return bits[0] + (f" ({', '.join(extra)})" if extra else "")

    def require(self, name: str) -> dict[str, Any]:
        if name in self.clouds:
            return self.clouds[name]
        where = f" in {self.path}" if self.path else ""
        known = ", ".join(self.names) or "none"
        raise LabError(
            f"cloud {name!r} is not defined{where} (known clouds: {known})",
            "check the name, or point OS_CLIENT_CONFIG_FILE at the clouds.yaml that defines it",
            code="cloud-not-found",
        )


def load_clouds(path: Path | None = None) -> CloudsConfig:
    """The first clouds.yaml found (or `path`). Clear errors for unreadable or invalid files."""
    paths = [Path(path)] if path else candidate_files()
    found: Path | None = None
    for p in paths:
        if p.is_file() or (path is not None):
            found = p
            break
    cfg = CloudsConfig(path=found)
    if found is not None:
        try:
            text = found.read_text()
        except OSError as exc:
            raise LabError(
                f"cannot read {found}: {exc.strerror or exc}",
                "check that the file exists and that you may read it",
                code="clouds-unreadable",
            ) from exc
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise LabError(
                f"{found} is not valid YAML{where}",
                "fix the file (a common cause is a tab used for indentation)",
                code="clouds-invalid",
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("clouds", {}), dict):
            raise LabError(
                f"{found} has no 'clouds:' mapping",
                "a clouds.yaml starts with 'clouds:' followed by one entry per cloud",
                code="clouds-invalid",
            )
        for name, entry in (data.get("clouds") or {}).items():
            if not isinstance(entry, dict):
                raise LabError(
                    f"{found}: cloud {name!r} is not a mapping",
                    "each cloud needs keys such as auth: and region_name:",
                    code="clouds-invalid",
                )
            cfg.clouds[str(name)] = entry
    if os.environ.get("OS_AUTH_URL"):
        cfg.clouds.setdefault(
            os.environ.get("OS_CLOUD_NAME", ENV_CLOUD),
            {"auth": {"auth_url": os.environ["OS_AUTH_URL"], "project_name": os.environ.get("OS_PROJECT_NAME")},
             "region_name": os.environ.get("OS_REGION_NAME")},
        )
    default = os.environ.get("OS_CLOUD")
    cfg.default = default if default in cfg.clouds else (cfg.names[0] if len(cfg.names) == 1 else None)
    return cfg
