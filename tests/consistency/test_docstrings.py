"""Every public function and class of the library has a docstring with an
Example that runs (the doctests run with the fast tests)."""

import ast
from pathlib import Path

import speechbrain_kd

# The package imported (a source checkout or an installed wheel).
LIBRARY = Path(speechbrain_kd.__file__).parent


def public_definitions():
    """(file, line, name, docstring) of each public top-level definition."""
    for path in sorted(LIBRARY.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                if not node.name.startswith("_"):
                    yield path, node.lineno, node.name, ast.get_docstring(node)


def test_every_public_function_and_class_has_a_runnable_example():
    missing = [
        f"{path.relative_to(LIBRARY.parent)}:{line} {name}"
        for path, line, name, doc in public_definitions()
        if not doc or "Example" not in doc or ">>> " not in doc
    ]
    assert not missing, "no Example with a doctest:\n" + "\n".join(missing)


def test_the_check_sees_the_library():
    names = {name for _, _, name, _ in public_definitions()}
    assert {"DistillationLoss", "TeacherEnsemble", "crop_start"} <= names
