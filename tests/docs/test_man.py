"""Man pages: generated from the app, committed current, rendering without a warning."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kcli.cli import docs
from kcli.errors import ExitCode
from tests.support.broker import REPO_ROOT

MAN = REPO_ROOT / "man"
PAGES = sorted(MAN.glob("*.1"))


def test_committed_files_are_current() -> None:
    stale = docs.stale()
    assert stale == [], f"{docs.STALE_HINT}: {stale}"


def test_check_notices_a_stale_or_extra_file_and_write_repairs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert docs.main(["--root", str(tmp_path)]) == 0  # writes everything
    assert docs.main(["--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "man" / "kcli-topic.1").write_text("old\n")
    (tmp_path / "man" / "kcli-gone.1").write_text("a command that no longer exists\n")
    (tmp_path / "completions" / "kcli.fish").unlink()
    assert docs.stale(tmp_path) == ["man/kcli-topic.1", "completions/kcli.fish",
                                    "man/kcli-gone.1 (not generated)"]
    capsys.readouterr()
    assert docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "stale: man/kcli-topic.1", "stale: completions/kcli.fish",
        "stale: man/kcli-gone.1 (not generated)", docs.STALE_HINT]
    assert "run scripts/gen-docs" in docs.STALE_HINT
    docs.write(tmp_path)
    assert docs.stale(tmp_path) == []
    assert not (tmp_path / "man" / "kcli-gone.1").exists()


def test_the_readme_table_is_generated_and_checked(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# top\n\n{docs.README_BEGIN}\n| old |\n{docs.README_END}\n\ntail\n")
    assert "README.md" in docs.stale(tmp_path)
    docs.write(tmp_path)
    text = readme.read_text()
    assert "README.md" not in docs.stale(tmp_path)
    assert text.startswith(f"# top\n\n{docs.README_BEGIN}\n| Command |")
    assert text.endswith(f"{docs.README_END}\n\ntail\n")
    assert "| old |" not in text
    assert "| `kcli topic` | `list` `describe` `create`" in text
    readme.write_text("no markers\n")
    with pytest.raises(ValueError, match=r"README\.md needs the lines"):
        docs.generated(tmp_path)


def test_short_help_is_the_first_sentence() -> None:
    from typer.core import TyperCommand

    def short(text: str) -> str:
        return docs.short_help(TyperCommand("x", help=text))

    assert short("Back up (kcli backup T.. --to DIR) or verify. More here.") == (
        "Back up (kcli backup T.. --to DIR) or verify")
    assert short("List topics.\n\nDetails.") == "List topics"
    assert short("Read at -N (the last N). Then stop") == "Read at -N (the last N)"
    assert short("See kcli.config for the file") == "See kcli.config for the file"


def test_top_level_commands_in_reading_order() -> None:
    root = docs.root_node()
    names = [node.path[-1] for node in docs.top_level(root)]
    assert sorted(names) == sorted(node.path[-1] for node in root.children())
    known = [name for name in docs.READING_ORDER if name in names]
    assert names[:len(known)] == known


def test_gen_docs_script_checks() -> None:
    done = subprocess.run([str(REPO_ROOT / "scripts" / "gen-docs"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_one_page_per_command_and_every_option_on_it() -> None:
    root = docs.root_node()
    commands = list(root.children())
    assert {p.name for p in PAGES} == {"kcli.1", *(f"kcli-{n.path[1]}.1" for n in commands)}
    main = (MAN / "kcli.1").read_text()
    for node in commands:
        page = (MAN / f"kcli-{node.path[1]}.1").read_text()
        assert f".BR kcli\\-{docs.esc(node.path[1])} (1)" in main
        for leaf in node.leaves():
            assert docs.synopsis(leaf) in page, leaf.name
            for param in leaf.params():
                if docs.is_help(param) or docs.is_global(param):
                    continue
                names = [docs.argument_name(param)] if docs.is_argument(param) else param.opts
                for name in names:
                    assert docs.esc(name) in page, (leaf.name, name)
    for param in root.params():
        for name in param.opts:
            assert f"\\fB{docs.esc(name)}\\fR" in main


def test_main_page_has_environment_files_exit_status() -> None:
    text = (MAN / "kcli.1").read_text()
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "GLOBAL OPTIONS", "COMMANDS",
                    "ENVIRONMENT", "FILES", "EXIT STATUS", "SEE ALSO"):
        assert f"\n.SH {section}\n" in text
    environment = text.split(".SH ENVIRONMENT")[1].split(".SH FILES")[0]
    for name in ("KCLI_BOOTSTRAP", "KCLI_PROFILE", "KCLI_TIMEOUT", "KCLI_STATE_DIR",
                 "XDG_CONFIG_HOME"):
        assert f".B {name}\n" in environment
    assert "config.toml" in text.split(".SH FILES")[1]
    status = text.split(".SH EXIT STATUS")[1].split(".SH SEE ALSO")[0]
    for code in ExitCode:
        assert f".B {int(code)}\n" in status
    assert "Stopped by Ctrl" in status  # the docstring of ExitCode.INTERRUPTED


def test_exit_codes_come_from_the_docstrings() -> None:
    codes = dict(docs.exit_codes())
    assert codes[0] == "The command did what it was asked."
    assert codes[3] == "The cluster could not be reached, or an operation timed out."
    assert set(codes) == {int(c) for c in ExitCode}


def test_roff_escapes() -> None:
    assert docs.esc(r"-b C:\dir") == r"\-b C:\edir"
    assert docs.esc("naïve → x") == r"na\[u00EF]ve \[u2192] x"
    assert docs.paragraphs(".hidden request\n'also") == [r"\&.hidden request 'also"]
    assert docs.paragraphs("one\n\ntwo") == ["one", ".PP", "two"]
    assert docs.paragraphs("intro\n\n\b\n  cmd -x\n  .dot") == [
        "intro", ".PP", ".nf", r"  cmd \-x", r"  .dot", ".fi"]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian: man-db, groff-base)")
    return path


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_renders_without_warnings(page: Path) -> None:
    groff = subprocess.run([_tool("groff"), "-man", "-Tutf8", "-ww", "-z", str(page)],
                           capture_output=True, text=True, check=False)
    assert groff.returncode == 0, groff.stderr
    assert groff.stderr == ""
    env = dict(os.environ, MANWIDTH="80")
    env.pop("MAN_KEEP_FORMATTING", None)  # plain text when stdout is not a terminal
    man = subprocess.run([_tool("man"), "--warnings", "-E", "UTF-8", "-l", str(page)],
                         capture_output=True, text=True, env=env, check=False)
    assert man.returncode == 0, man.stderr
    assert man.stderr == ""
    assert "NAME" in man.stdout
    assert "SEE ALSO" in man.stdout
    assert max(len(line) for line in man.stdout.splitlines()) <= 80
