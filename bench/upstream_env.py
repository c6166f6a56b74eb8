"""Upstream's own virtual environment: ``penguiflow`` pinned, never installed into the project env.

Created with ``uv venv`` on the project's base interpreter (so both sides run the same CPython build),
then ``uv pip install penguiflow==<pin> opentelemetry-sdk==<ours>``. The SDK is there for the span
middleware scenario (upstream instrumented the way its users do it); its version is the one this
project's ``uv.lock`` pins, so both runtimes trace with the same SDK. Reused while both installed versions
match.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

__all__ = ["UPSTREAM_PIN", "UpstreamEnvError", "ensure_upstream_env", "upstream_pins"]

UPSTREAM_PIN = "3.11.2"
ROOT = Path(__file__).resolve().parent.parent
ENV_DIR = ROOT / "bench" / ".envs" / "upstream"
LOCK = ROOT / "uv.lock"
SDK = "opentelemetry-sdk"
_VERSION_PROBE = (
    "import importlib.metadata as m, sys\n"
    "for name in sys.argv[1:]:\n"
    "    try:\n"
    "        print(name, m.version(name))\n"
    "    except m.PackageNotFoundError:\n"
    "        print(name, '-')\n"
)


class UpstreamEnvError(RuntimeError):
    """The upstream environment could not be created or does not hold the pinned versions."""


def _python(env: Path) -> Path:
    return env / "bin" / "python"


@cache
def locked_version(package: str, lock: Path = LOCK) -> str:
    """The version of ``package`` in this project's ``uv.lock``.

    Raises:
        UpstreamEnvError: the lock cannot be read or does not name ``package``.
    """
    try:
        data = tomllib.loads(lock.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UpstreamEnvError(f"cannot read {lock}: {exc}") from exc
    for entry in data.get("package", []):
        if entry.get("name") == package and "version" in entry:
            return str(entry["version"])
    raise UpstreamEnvError(f"{lock} pins no {package}")


def upstream_pins(pin: str = UPSTREAM_PIN) -> dict[str, str]:
    """What upstream's environment must hold: ``penguiflow==pin`` and our locked OTel SDK."""
    return {"penguiflow": pin, SDK: locked_version(SDK)}


def installed_versions(env: Path, packages: list[str]) -> dict[str, str] | None:
    """The installed version of each of ``packages`` in ``env`` (``-`` when absent); ``None`` without env."""
    python = _python(env)
    if not python.exists():
        return None
    probe = subprocess.run(
        [python, "-c", _VERSION_PROBE, *packages], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return None
    return dict(line.split(" ", 1) for line in probe.stdout.splitlines() if " " in line)


def _uv(*args: str | Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        raise UpstreamEnvError("`uv` is not on PATH; it is needed to build the upstream environment")
    done = subprocess.run([uv, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UpstreamEnvError(f"uv {' '.join(map(str, args))} failed:\n{done.stderr.strip()}")


def ensure_upstream_env(env: Path = ENV_DIR, pin: str = UPSTREAM_PIN) -> Path:
    """Return the interpreter of an environment holding the pinned versions, building it if needed."""
    pins = upstream_pins(pin)
    if installed_versions(env, list(pins)) == pins:
        return _python(env)
    wanted = [f"{name}=={version}" for name, version in pins.items()]
    print(f"bench: building upstream env {env} ({', '.join(wanted)})", file=sys.stderr)
    _uv("venv", "--clear", "--quiet", "--python", Path(getattr(sys, "_base_executable", sys.executable)), env)
    python = _python(env)
    _uv("pip", "install", "--quiet", "--compile-bytecode", "--python", python, *wanted)
    found = installed_versions(env, list(pins))
    if found != pins:
        raise UpstreamEnvError(f"{env} holds {found} after installing {', '.join(wanted)}")
    return python
