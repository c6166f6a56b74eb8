"""Upstream's own virtual environment: ``penguiflow`` pinned, never installed into the project env.

Created with ``uv venv`` on the project's base interpreter (so both sides run the same CPython build),
then ``uv pip install penguiflow==<pin>``. Reused while its installed version matches the pin.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["UPSTREAM_PIN", "UpstreamEnvError", "ensure_upstream_env"]

UPSTREAM_PIN = "3.11.2"
ENV_DIR = Path(__file__).resolve().parent / ".envs" / "upstream"
_VERSION_PROBE = "import importlib.metadata as m; print(m.version('penguiflow'))"


class UpstreamEnvError(RuntimeError):
    """The upstream environment could not be created or does not hold the pinned version."""


def _python(env: Path) -> Path:
    return env / "bin" / "python"


def installed_version(env: Path = ENV_DIR) -> str | None:
    """The ``penguiflow`` version installed in ``env``, or ``None`` if there is none."""
    python = _python(env)
    if not python.exists():
        return None
    probe = subprocess.run([python, "-c", _VERSION_PROBE], capture_output=True, text=True, check=False)
    return probe.stdout.strip() if probe.returncode == 0 else None


def _uv(*args: str | Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        raise UpstreamEnvError("`uv` is not on PATH; it is needed to build the upstream environment")
    done = subprocess.run([uv, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UpstreamEnvError(f"uv {' '.join(map(str, args))} failed:\n{done.stderr.strip()}")


def ensure_upstream_env(env: Path = ENV_DIR, pin: str = UPSTREAM_PIN) -> Path:
    """Return the interpreter of an environment holding ``penguiflow==pin``, building it if needed."""
    if installed_version(env) == pin:
        return _python(env)
    base = Path(getattr(sys, "_base_executable", sys.executable))
    print(f"bench: building upstream env {env} (penguiflow=={pin})", file=sys.stderr)
    _uv("venv", "--clear", "--quiet", "--python", base, env)
    python = _python(env)
    _uv("pip", "install", "--quiet", "--compile-bytecode", "--python", python, f"penguiflow=={pin}")
    if installed_version(env) != pin:
        raise UpstreamEnvError(f"{env} does not hold penguiflow=={pin} after installing it")
    return python
