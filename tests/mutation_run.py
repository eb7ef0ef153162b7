"""`mutmut` for `make mutation`, with Django's template-library registrations mutated too (docs/testing.md).

mutmut 3.8.1 leaves every decorated function alone (copying a decorated function for its trampoline could run the
decorator's side effects twice). The filters and tags of catalog/templatetags/rigfit.py are all decorated
(`@register.filter`, `@register.simple_tag`), so mutmut would make no mutant of them. A Django registration has no
side effect but the registration itself: the trampoline (which keeps the decorators) registers the filter under its
own name, as without mutmut, and each copy registers one more filter under its mangled name
(`x_gb__mutmut_3`), which no template uses. So this runs mutmut's own command line with one rule changed: a function
whose only decorators are `register.filter`, `register.simple_tag` or `register.inclusion_tag` (with or without
arguments) is mutated like an undecorated one. The decorators themselves are still never mutated.

    python tests/mutation_run.py run [mutmut's arguments]      # as `mutmut run ...`
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as `python tests/mutation_run.py`, Python puts tests/ first on sys.path, where tests/catalog/ (a package) would
# shadow the mutated catalog/: drop it, as the `mutmut` script's own folder (.venv/bin) holds no package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import libcst as cst  # noqa: E402
from libcst.metadata import PositionProvider  # noqa: E402
from mutmut.mutation import file_mutation  # noqa: E402

REGISTRATIONS = frozenset({"filter", "simple_tag", "inclusion_tag"})


def is_template_registration(decorator: cst.BaseExpression) -> bool:
    """`@register.filter`, `@register.simple_tag(takes_context=True)` and the like."""
    if isinstance(decorator, cst.Call):
        decorator = decorator.func
    return (
        isinstance(decorator, cst.Attribute)
        and isinstance(decorator.value, cst.Name)
        and decorator.value.value == "register"
        and decorator.attr.value in REGISTRATIONS
    )


_skip_node_and_children = file_mutation.MutationVisitor._skip_node_and_children


def _skip_unless_registered(self: file_mutation.MutationVisitor, node: cst.CSTNode) -> bool:
    if (
        isinstance(node, cst.FunctionDef)
        and node.decorators
        and all(is_template_registration(d.decorator) for d in node.decorators)
    ):
        # What mutmut checks of an undecorated function: `# pragma: no mutate` and the names it never mutates.
        position = self.get_metadata(PositionProvider, node, None)
        if position and position.start.line in self._ignored_node_lines:
            self.ignored_functions.add(node.name.value)
            return True
        return node.name.value in file_mutation.NEVER_MUTATE_FUNCTION_NAMES
    return _skip_node_and_children(self, node)


file_mutation.MutationVisitor._skip_node_and_children = _skip_unless_registered  # type: ignore[method-assign]

if __name__ == "__main__":
    from mutmut.__main__ import cli

    sys.exit(cli())
