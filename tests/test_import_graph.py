"""The product's modules import each other without a cycle, lazy imports included
(``python -m tools.import_cycles`` prints the graph and any cycle)."""

from tools.import_cycles import cycles, import_graph


def test_no_import_cycle_in_assistant_server_or_tui():
    assert cycles(import_graph()) == []


def test_the_checker_sees_a_lazy_import_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import x\n")
    assert cycles(import_graph(tmp_path, ("pkg",))) == [["pkg.a", "pkg.b"]]


def test_the_core_does_not_import_the_server_or_the_editor():
    """Only the commands (and the benchmark, which starts servers) reach into server/ and tui/."""
    graph = import_graph()
    allowed = ("assistant.commands.", "assistant.bench.")
    for name, targets in graph.items():
        if name.startswith("assistant") and not name.startswith(allowed):
            assert not {t for t in targets if t.startswith(("server", "tui"))}, name
