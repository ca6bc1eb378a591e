"""docs/reference.md is what the code's --help says, and tools that read the app see all of it."""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

from stroute.cli import app as app_module
from stroute.cli.reference import render

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference.md"
REGENERATE = "python -m stroute.cli.reference > docs/reference.md"


def test_reference_md_is_the_generated_reference():
    generated, committed = render(), REFERENCE.read_text()
    if generated != committed:
        diff = "".join(list(difflib.unified_diff(committed.splitlines(True), generated.splitlines(True),
                                                 "docs/reference.md (committed)", "generated from the code"))[:80])
        raise AssertionError(f"docs/reference.md is out of date with the commands' help: run `{REGENERATE}` "
                             f"and commit it\n{diff}")


def test_reference_has_a_section_for_every_command_and_subcommand():
    text = render()
    root = __import__("typer").main.get_command(app_module.app)
    expected = []
    for name in app_module._COMMANDS:
        command = root.get_command(None, name)
        expected.append(f"stroute {name}")
        for sub in getattr(command, "commands", {}):
            expected.append(f"stroute {name} {sub}")
    assert len(expected) > len(app_module._COMMANDS)  # the groups' subcommands were found
    missing = [path for path in expected if f"\n## {path}\n" not in text]
    assert missing == []
    assert "..." not in "".join(line for line in text.splitlines() if line.startswith("- [`"))  # summaries uncut


def test_typer_utils_docs_sees_every_command():
    # `typer MODULE utils docs` finds an app by listing the module, so `app`
    # must be listed though it is built only when first asked for.
    proc = subprocess.run([sys.executable, "-m", "typer", "stroute.cli.app", "utils", "docs", "--name", "stroute"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    for name in app_module._COMMANDS:
        assert f"## `stroute {name}`" in proc.stdout, name
    assert "## `stroute link get`" in proc.stdout and "## `stroute pod drain`" in proc.stdout


def test_the_command_line_still_builds_only_the_command_it_runs():
    proc = subprocess.run([sys.executable, "-c", "import sys; from stroute.cli import app; "
                           "print('app' in dir(app), 'app' in vars(app), 'stroute.cli.serve' in sys.modules)"],
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["True", "False", "False"], proc.stderr
