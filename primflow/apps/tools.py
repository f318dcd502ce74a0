"""The tools of the built-in agent: a safe arithmetic evaluator and its function.

No code from model text is ever executed: the expression is parsed with :mod:`ast` and
only number literals, ``+ - * / // % **`` and unary signs are evaluated, with bounds on
the expression's length, the exponent and the size of every intermediate value. A bad
expression is not an error of the query: the tool reports it back as its observation,
as an agent's tool does.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

from primflow.api.function import function

MAX_EXPRESSION_CHARS = 200
MAX_EXPONENT = 64
MAX_MAGNITUDE = 1e15

# The decode of the calculator follows this grammar: numbers, + - * / % and brackets.
ARITHMETIC_GRAMMAR = (
    "root ::= expr\n"
    "expr ::= term (ws [-+] ws term){0,8}\n"
    "term ::= factor (ws [*/%] ws factor){0,8}\n"
    'factor ::= "-"? (number | "(" ws expr ws ")")\n'
    'number ::= [0-9]{1,12} ("." [0-9]{1,6})?\n'
    'ws ::= " "?\n'
)

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


class ArithmeticError_(ValueError):
    """An expression the calculator refuses; the message says what and where."""


def evaluate_arithmetic(expression: str) -> float:
    """The value of an arithmetic expression; raises ArithmeticError_ for anything else.

    Examples:
        >>> evaluate_arithmetic("(12 + 30) * 2 / 4")
        21.0
        >>> evaluate_arithmetic("__import__('os').system('ls')")
        Traceback (most recent call last):
        ...
        primflow.apps.tools.ArithmeticError_: not arithmetic: a call at column 0
    """
    text = expression.strip()
    if not text:
        raise ArithmeticError_("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ArithmeticError_(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ArithmeticError_(f"not an expression: {exc.msg} at column {exc.offset}") from None
    return _value(tree.body)


def _value(node: ast.expr) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ArithmeticError_(f"not arithmetic: a truth value at column {node.col_offset}")
        return _bounded(float(node.value), node)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ArithmeticError_(f"exponent {right:g} is above {MAX_EXPONENT}")
        try:
            return _bounded(_BINARY[type(node.op)](left, right), node)
        except (ZeroDivisionError, OverflowError) as exc:
            raise ArithmeticError_(f"{exc} at column {node.col_offset}") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    kind = {ast.Call: "a call", ast.Name: "a name", ast.Attribute: "an attribute"}.get(
        type(node), type(node).__name__
    )
    raise ArithmeticError_(f"not arithmetic: {kind} at column {node.col_offset}")


def _bounded(value: float | complex, node: ast.expr) -> float:
    if isinstance(value, complex) or not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise ArithmeticError_(f"a value out of range at column {node.col_offset}")
    return float(value)


@function(is_cheap=True)
def calculate(notes: list[str], expression: str) -> list[str]:
    """The agent's calculator: the notes with the expression's value (or why not) added."""
    try:
        value = evaluate_arithmetic(expression)
    except ArithmeticError_ as exc:
        return [*notes, f"calculator: {expression.strip()!r} failed: {exc}"]
    return [*notes, f"calculator: {expression.strip()} = {value:g}"]
