"""Hostile or mistaken config files: `monitor check` refuses each with file:line:column and a
clear message, in bounded time, instead of hanging (the hostile-input issue, "config attacks")."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.config.bounds import MAX_BYTES, MAX_VALUES, expansion_problem, loaded_children
from monitor.config.loader import load_yaml_model
from monitor.config.models import Settings

SHIPPED = Path(__file__).resolve().parent.parent / "config"
FILES = ["monitor.yaml", "feeds.yaml", "actors.yaml", "watches.yaml", "channels.yaml"]


def _alias_bomb(levels: int = 9) -> str:
    """Nine lines holding 9⁹ (387 million) strings once every alias is expanded."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


# (what the file is replaced with, expected "line:column: key path: message" after the file name)
ATTACKS: dict[str, tuple[Callable[[str], str], str]] = {
    "an alias bomb": (
        lambda shipped: _alias_bomb(),
        "6:5: (yaml): its aliases expand to more than 500,000 values (a YAML alias bomb?)",
    ),
    "lists nested 3,000 deep": (
        lambda shipped: "x: " + "[" * 3000 + "]" * 3000 + "\n",
        "1:54: (yaml): brackets nested more than 50 deep",
    ),
    "block lists nested 2,000 deep": (
        lambda shipped: "x:\n" + "- " * 2000 + "v\n",
        "1:1: (yaml): nested too deeply (hundreds of levels of lists or mappings)",
    ),
    "a 3 MB file": (
        lambda shipped: shipped + "# " + "x" * 3_000_000 + "\n",
        f"1:1: (file): file is {{size:,}} bytes, larger than the {MAX_BYTES:,} a config file",
    ),
}


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    shutil.copytree(SHIPPED, folder)
    return folder


def check(config_dir: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-c", str(config_dir), "check"], catch_exceptions=False)
    return result.exit_code, result.output


def test_the_shipped_config_passes_check(config_dir: Path) -> None:
    code, output = check(config_dir)
    assert code == 0, output


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
def test_a_hostile_config_file_is_refused_at_check_with_its_position(
    config_dir: Path, name: str, attack: str
) -> None:
    make, expected = ATTACKS[attack]
    path = config_dir / name
    path.write_text(make(path.read_text()))
    code, output = check(config_dir)
    assert code == 1
    assert f"{path}:{expected.format(size=path.stat().st_size)}" in output


def test_a_recursive_anchor_does_not_hang_check(config_dir: Path) -> None:
    # ruamel loads the inner alias of an anchor that contains itself as null: no endless walk
    path = config_dir / "watches.yaml"
    path.write_text(path.read_text() + "loop: &loop [1, *loop]\n")
    code, output = check(config_dir)
    assert code == 1 and f"{path}:" in output and "loop: unknown key" in output


def test_brackets_in_comments_do_not_count_as_nesting(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text("# " + "[" * 100 + "\npolling: {interval: 5m}  # " + "{" * 100 + "\n")
    assert load_yaml_model(path, Settings).polling.interval.total_seconds() == 300


def test_the_expansion_count_is_exact_at_the_bound() -> None:
    from ruamel.yaml import YAML

    root = YAML(typ="rt").load(_alias_bomb(levels=3))  # 9 + 81 + 729 strings, 1 + 9 + ... lists
    expanded = 1 + (1 + 9) + (1 + 9 * 10) + (1 + 9 * 91) + 3  # the root, a0, a1, a2, their keys
    assert expansion_problem(root, loaded_children, limit=expanded) is None
    assert expansion_problem(root, loaded_children, limit=expanded - 1) is not None
    assert MAX_VALUES > 100_000  # a large real config (10,000 outlets) stays well inside


@pytest.mark.parametrize(
    "template, expected",
    [
        ('{% include "../../../etc/passwd" %}', "names must stay inside the template folder"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
        ("{% for x in message.entries %}{{ x.title }", "text.txt"),
    ],
    ids=["a path outside the folder", "python internals", "a syntax error"],
)
def test_a_hostile_or_broken_template_is_refused_at_check(
    config_dir: Path, template: str, expected: str
) -> None:
    (config_dir / "templates").mkdir()
    (config_dir / "templates" / "text.txt").write_text(template)
    code, output = check(config_dir)
    assert code == 1 and expected in output, output
