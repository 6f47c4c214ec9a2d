"""Sandbox layer: the box a plugin's venv is built in (the installer runs plugin-chosen code).

Contract: `build_command(argv, writable=..., read_only=..., host_env=...)` is `(argv, env)` for
one installer step: under bubblewrap (when it works here) with the same family of restrictions
as a plugin — a read-only system, a private /tmp, a new user namespace with every capability
dropped, new PID/IPC/UTS namespaces, die-with-parent — and only the venv being built and the
package cache writable. The environment is not the host's: PATH, a HOME in /tmp, and the
operator's package-index settings (`index_environment`): uv's and pip's index variables, CA
bundles and proxies; local paths they name (`file://` indexes, find-links directories, CA files)
are bound read-only so a local index keeps working. The network is shared unless `network=False`:
the build must reach the package index (see docs/security.md for what that leaves open).
Without bubblewrap the step runs with the same environment, and `bwrap_available()` says so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._bwrap import _ETC_FILES, _SYSTEM_DIRS, bwrap_path, interpreter_prefixes
from ._policy import LAYER_BWRAP, probe_layers

# Where the operator points installers at a package index (uv reads UV_*, pip reads PIP_* and
# its config files; both honour the CA and proxy variables).
INDEX_ENV_KEYS = (
    "UV_INDEX",
    "UV_DEFAULT_INDEX",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_INDEX_STRATEGY",
    "UV_KEYRING_PROVIDER",
    "UV_NATIVE_TLS",
    "UV_CONFIG_FILE",
    "UV_OFFLINE",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_CERT",
    "PIP_CONFIG_FILE",
    "PIP_DEFAULT_TIMEOUT",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
_CONFIG_FILES = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "/etc/uv/uv.toml")
_PATHISH = re.compile(r"(?:file://)?(/[^\s]+)")


def bwrap_available() -> bool:
    return any(layer.name == LAYER_BWRAP and layer.available for layer in probe_layers())


def index_environment(host_env: Mapping[str, str]) -> dict[str, str]:
    """The operator's index settings from the host environment, plus the user's config files."""
    env = {key: host_env[key] for key in INDEX_ENV_KEYS if key in host_env}
    home = host_env.get("HOME")
    if home and "PIP_CONFIG_FILE" not in env:
        user_pip = Path(home) / ".config" / "pip" / "pip.conf"
        if user_pip.is_file():
            env["PIP_CONFIG_FILE"] = str(user_pip)
    if home and "UV_CONFIG_FILE" not in env:
        user_uv = Path(home) / ".config" / "uv" / "uv.toml"
        if user_uv.is_file():
            env["UV_CONFIG_FILE"] = str(user_uv)
    return env


def _local_paths(env: Mapping[str, str]) -> list[Path]:
    """Existing local paths named by the index settings (and inside their config files)."""
    found: list[Path] = []
    texts = list(env.values())
    for key in ("PIP_CONFIG_FILE", "UV_CONFIG_FILE"):
        if key in env:
            found.append(Path(env[key]))
            texts.append(_read(Path(env[key])))
    texts += [_read(Path(config)) for config in _CONFIG_FILES]
    for text in texts:
        for match in _PATHISH.finditer(text):
            candidate = Path(match.group(1).rstrip("\"',"))
            if candidate.exists() and candidate != Path("/"):
                found.append(candidate)
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def build_command(
    argv: Sequence[str],
    *,
    writable: Sequence[Path],
    read_only: Sequence[Path] = (),
    host_env: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    network: bool = True,
) -> tuple[list[str], dict[str, str]]:
    """The sandboxed command line and environment (the installer's own `env` added)."""
    source = dict(os.environ) if host_env is None else host_env
    step_env = {"PATH": source.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": "/tmp"}
    step_env.update({"LANG": "C.UTF-8", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1"})
    step_env.update(index_environment(source))
    step_env.update(env or {})
    executable = bwrap_path()
    if executable is None or not bwrap_available():
        return list(argv), step_env
    args = [executable, "--die-with-parent", "--new-session", "--unshare-pid"]
    args += ["--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    args += ["--unshare-user", "--cap-drop", "ALL"]
    if not network:
        args.append("--unshare-net")
    for directory in _SYSTEM_DIRS:
        args += ["--ro-bind-try", directory, directory]
    for etc_path in (*_ETC_FILES, *_CONFIG_FILES):
        args += ["--ro-bind-try", etc_path, etc_path]
    args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for path in [*interpreter_prefixes(), *read_only, *_local_paths(step_env)]:
        resolved = str(Path(path).resolve())
        args += ["--ro-bind-try", resolved, resolved]
    for path in writable:
        Path(path).mkdir(parents=True, exist_ok=True)
        resolved = str(Path(path).resolve())
        args += ["--bind", resolved, resolved]
    args += ["--remount-ro", "/", "--chdir", "/tmp", "--"]
    return args + list(argv), step_env
