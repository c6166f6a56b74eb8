"""``penguiflow-otel new``: render a project from the templates shipped as package data.

Templates live under ``templates/``: ``common/`` holds the files every template has, and
``<template>/`` adds or replaces files. Rendering is plain substitution of ``{{ project_name }}``,
``{{ package_name }}`` and ``{{ penguiflow_otel_version }}`` (no template engine); in paths,
``__package_name__`` becomes the package name, a leading ``dot-`` becomes ``.`` and the ``.tmpl``
suffix is dropped. Every check runs, and every file is rendered in memory, before anything is written.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from .._version import __version__
from ._errors import CommandError

__all__ = ["TEMPLATES", "NewOptions", "package_name_for", "render_project", "run_new"]

TEMPLATES = ("minimal", "react")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
_MAX_NAME = 64  # agent and flow names are capped at 64 characters
_LEFTOVER = re.compile(r"\{\{\s*[a-z_]+\s*\}\}")


@dataclass(frozen=True, slots=True)
class NewOptions:
    """The options of ``penguiflow-otel new``."""

    name: str
    template: str = "react"
    output_dir: Path = Path()
    force: bool = False
    dry_run: bool = False
    quiet: bool = False


def package_name_for(name: str) -> str:
    """The import name of project ``name``, or ``CommandError`` if ``name`` cannot be a project name."""
    if not _NAME.match(name):
        raise CommandError(
            f"invalid project name {name!r}: start with a letter, then use letters, digits, '-' or '_' "
            "(e.g. my-agent)"
        )
    if len(name) > _MAX_NAME:
        raise CommandError(f"project name {name!r} is {len(name)} characters long; use at most {_MAX_NAME}")
    package = name.lower().replace("-", "_")
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        raise CommandError(
            f"project name {name!r} gives the package name {package!r}, a Python keyword; rename it"
        )
    if package in sys.stdlib_module_names or package == "penguiflow_otel":
        raise CommandError(
            f"project name {name!r} gives the package name {package!r}, which would shadow the module of "
            "that name; rename it"
        )
    return package


def _template_files(template: str) -> dict[PurePosixPath, Traversable]:
    if template not in TEMPLATES:
        raise CommandError(f"unknown template {template!r}; choose one of: {', '.join(TEMPLATES)}")
    root = files(__package__ or "penguiflow_otel.cli").joinpath("templates")
    found: dict[PurePosixPath, Traversable] = {}
    for layer in ("common", template):
        _walk(root.joinpath(layer), PurePosixPath(), found)
    return found


def _walk(folder: Traversable, prefix: PurePosixPath, found: dict[PurePosixPath, Traversable]) -> None:
    for entry in folder.iterdir():
        if entry.is_dir():
            _walk(entry, prefix / entry.name, found)
        elif entry.name.endswith(".tmpl"):
            found[prefix / entry.name] = entry


def _target_path(template_path: PurePosixPath, package: str) -> PurePosixPath:
    parts = []
    for part in template_path.parts:
        part = part.replace("__package_name__", package).removesuffix(".tmpl")
        parts.append("." + part.removeprefix("dot-") if part.startswith("dot-") else part)
    return PurePosixPath(*parts)


def _source_checkout() -> Path | None:
    """The repository this package runs from, when it is a source checkout rather than an installed wheel."""
    root = Path(__file__).resolve().parents[2]
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return root if re.search(r'(?m)^name\s*=\s*"penguiflow-otel"\s*$', text) else None


def render_project(name: str, template: str) -> dict[PurePosixPath, str]:
    """Every file of the project ``name`` from ``template``: relative path -> text.

    Raises:
        CommandError: The name or the template is invalid.
    """
    package = package_name_for(name)
    values = {"project_name": name, "package_name": package, "penguiflow_otel_version": __version__}
    rendered: dict[PurePosixPath, str] = {}
    for template_path, source in sorted(_template_files(template).items()):
        text = source.read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace("{{ " + key + " }}", value)
        leftover = _LEFTOVER.search(text)
        if leftover is not None:  # pragma: no cover - a template bug, caught by the template tests
            raise ValueError(f"template {template_path} has an unknown placeholder {leftover.group(0)}")
        rendered[_target_path(template_path, package)] = text
    checkout = _source_checkout()
    if checkout is not None:
        pyproject = PurePosixPath("pyproject.toml")
        rendered[pyproject] += (
            "\n[tool.uv.sources]\n"
            "# Rendered from a source checkout: use it until penguiflow-otel is installed from an index.\n"
            f"penguiflow-otel = {{ path = {json.dumps(str(checkout))} }}\n"
        )
    return rendered


def _check_target(target: Path, rendered: dict[PurePosixPath, str], force: bool) -> None:
    if target.exists() and not target.is_dir():
        raise CommandError(f"{target} exists and is not a directory; choose another NAME or --output-dir")
    if target.exists() and not force:
        clashes = sum(1 for path in rendered if (target / path).exists())
        raise CommandError(
            f"{target} already exists ({clashes} of its files would be overwritten); "
            "pass --force to render into it, or choose another NAME or --output-dir"
        )


def run_new(options: NewOptions) -> int:
    """Render the project, print what was made and the next commands; return the exit code.

    Raises:
        CommandError: Invalid name or template, or an existing target without ``force``.
    """
    rendered = render_project(options.name, options.template)
    target = options.output_dir / options.name
    _check_target(target, rendered, options.force)
    if options.dry_run:
        if not options.quiet:
            print(f"would create {target}/ from the {options.template!r} template:")
            for path in rendered:
                print(f"  {path}")
        return 0
    for path, text in rendered.items():
        destination = target / path
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text, encoding="utf-8")
    if not options.quiet:
        _print_next_steps(target, options, rendered)
    return 0


def _print_next_steps(target: Path, options: NewOptions, rendered: dict[PurePosixPath, str]) -> None:
    package = package_name_for(options.name)
    print(f"created {target}/ from the {options.template!r} template ({len(rendered)} files)")
    print("next:")
    print(f"  cd {target}")
    print("  uv run --extra dev pytest")
    print(f'  uv run python -m {package} --trace "hello"')
    print("  uv run --extra dev penguiflow-otel dev --project-root .")
