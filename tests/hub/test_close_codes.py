"""Close codes come from one ``CloseCode`` enum, not from literals spread over the modules."""

from __future__ import annotations

import ast
from pathlib import Path

from hub.close_codes import CloseCode

ROOT = Path(__file__).resolve().parents[2]
# Calls whose first argument is a close code, and names a close code is stored in.
CLOSERS = {"close", "close_soon", "_close", "_give_up"}
CODE_NAMES = {"code", "close_code"}


def _names_a_close_code(name: str) -> bool:
    # A copy of the enum: SLOW_CONSUMER_CODE = 1008, POLICY_VIOLATION = 1008.
    return name in CODE_NAMES or name.endswith("_CODE") or name in CloseCode.__members__


def _is_close_code(node: ast.expr | None) -> bool:
    return (
        isinstance(node, ast.Constant)
        and type(node.value) is int
        and (1000 <= node.value <= 1015 or 3000 <= node.value <= 4999)
    )


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _literal_close_codes(tree: ast.AST) -> list[int]:
    """The lines where a close code is written as a number."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if _name(node.func) in CLOSERS and node.args and _is_close_code(node.args[0]):
                lines.append(node.lineno)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            named = any(_names_a_close_code(_name(target)) for target in targets)
            if named and _is_close_code(node.value):
                lines.append(node.lineno)
        elif isinstance(node, ast.Compare):
            numbers = any(_is_close_code(c) for c in [node.left, *node.comparators])
            if numbers and _name(node.left) in CODE_NAMES:
                lines.append(node.lineno)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            defaults = node.args.defaults
            arguments = node.args.args[-len(defaults) :] if defaults else []
            for argument, default in zip(arguments, defaults, strict=True):
                if argument.arg in CODE_NAMES and _is_close_code(default):
                    lines.append(node.lineno)
    return lines


def test_no_module_writes_a_close_code_as_a_number() -> None:
    """Closing, storing, comparing or defaulting a close code names a CloseCode member."""
    found = {}
    files = [*ROOT.joinpath("hub").rglob("*.py"), *ROOT.joinpath("protocols").rglob("*.py")]
    for path in files:
        if path.name == "close_codes.py":
            continue  # the enum itself
        lines = _literal_close_codes(ast.parse(path.read_text(encoding="utf-8")))
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    assert len(files) > 100
    assert found == {}


def test_the_scan_sees_each_kind_of_literal() -> None:
    """The scan sees a number in a close call, an assignment, a copy, a comparison, a default."""
    source = (
        "async def close(self, code: int = 1000): ...\n"
        "await session.close(1008, 'x')\n"
        "self.close_code = 1009\n"
        "POLICY_VIOLATION: Final = 1008\n"
        "if code == 3000: ...\n"
        "await session.close(CloseCode.POLICY_VIOLATION, 'fine')\n"
    )
    assert sorted(_literal_close_codes(ast.parse(source))) == [1, 2, 3, 4, 5]


def test_the_codes_are_the_registered_numbers() -> None:
    """The enum's values are RFC 6455's and IANA's (clients and tests read the numbers)."""
    assert CloseCode.NORMAL_CLOSURE == 1000
    assert CloseCode.GOING_AWAY == 1001
    assert CloseCode.POLICY_VIOLATION == 1008
    assert CloseCode.MESSAGE_TOO_BIG == 1009
    assert CloseCode.INTERNAL_ERROR == 1011
    assert CloseCode.TOKEN_EXPIRED == 3000
    assert CloseCode.TOKEN_REVOKED == 3003
