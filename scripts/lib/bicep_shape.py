"""Evaluates infra/'s Bicep for one parameter set: the resources that deployment "shape" creates.

No Bicep compiler runs offline, so this folds what the parameters decide — parameters,
variables, conditions, loops, the handful of functions the templates use — over pycep-parser's
tree (the parser checkov uses), and leaves everything known only at deployment (resource
properties, module outputs, uniqueString) as symbolic Bicep text.

  bicep_shape.py INFRA_DIR PARAMETERS.json...
      The parameters and resources of the shape, as JSON. Later parameter files override
      earlier ones, as `az deployment group create --parameters @a --parameters @b` does.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

from pycep import BicepParser


class ShapeError(Exception):
    """A parameter set the templates cannot take, or a construct this evaluator cannot fold."""


class Sym:
    """A value known only at deployment: its Bicep text, and pycep's node for checkov."""

    def __init__(self, text: str, node: Any) -> None:
        self.text = text
        self.node = node


def concrete(value: Any) -> bool:
    if isinstance(value, Sym):
        return False
    if isinstance(value, dict):
        return all(concrete(v) for v in value.values())
    if isinstance(value, list):
        return all(concrete(v) for v in value)
    return True


def text(value: Any) -> str:
    """Bicep text of an evaluated value."""
    if isinstance(value, Sym):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {text(v)}" for k, v in value.items()) + "}"
    return str(value)


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.capitalize() for part in rest)


LINE_KEYS = {"__start_line__", "__end_line__"}
PLACEHOLDER = re.compile(r"\$\{(.*?)\}")
PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
TYPES = {"string": str, "int": int, "bool": bool, "array": list, "object": dict}


def wrapped(conf: Any) -> bool:
    """pycep wraps a conditional or looped resource or module body as {condition, config, loop_type}."""
    return isinstance(conf, dict) and "config" in conf and set(conf) - LINE_KEYS <= {"condition", "config", "loop_type"}


class Scope:
    """Names visible in one template instance: parameters, variables (evaluated on first use),
    loop items, and the symbolic names of its resources and modules."""

    def __init__(self, parsed: dict, values: dict[str, Any] | None = None, parent: Scope | None = None) -> None:
        self.parsed = parsed
        self.values = values if values is not None else {}
        self.parent = parent
        self.evaluating: set[str] = set()

    def child(self, bound: dict[str, Any]) -> Scope:
        return Scope(self.parsed, dict(bound), self)

    def lookup(self, name: str) -> tuple[bool, Any]:
        if name in self.values:
            return True, self.values[name]
        if self.parent is not None:
            return self.parent.lookup(name)
        variable = (self.parsed.get("variables") or {}).get(name)
        if variable is None:
            return False, None
        if name in self.evaluating:
            raise ShapeError(f"variable '{name}' refers to itself")
        self.evaluating.add(name)
        self.values[name] = evaluate(variable["value"], self)
        self.evaluating.discard(name)
        return True, self.values[name]

    def symbol(self, name: str) -> bool:
        return name in (self.parsed.get("resources") or {}) or name in (self.parsed.get("modules") or {})


def evaluate(node: Any, scope: Scope) -> Any:
    if isinstance(node, str):
        if "${" in node:
            return interpolate(node, scope)
        found, value = scope.lookup(node)
        if found:
            return value
        # pycep gives identifiers and string literals alike as str: a name in scope is a reference.
        return Sym(node, node) if scope.symbol(node) else node
    if isinstance(node, list):
        return [evaluate(item, scope) for item in node]
    if not isinstance(node, dict):
        return node
    if "operator" in node and len(node) == 1:
        return operator(node, scope)
    if "function" in node and len(node) == 1:
        return function(node, scope)
    if "loop_type" in node:
        return [evaluate(body, inner) for inner, body in expand(node, scope)]
    return {key: evaluate(value, scope) for key, value in node.items() if key not in LINE_KEYS}


def interpolate(template: str, scope: Scope) -> Any:
    parts: list[str] = []
    known = True
    position = 0
    for match in PLACEHOLDER.finditer(template):
        parts.append(template[position : match.start()])
        position = match.end()
        expression = match.group(1)
        value: Any = Sym(expression, expression)
        if PATH.match(expression):
            head, *path = expression.split(".")
            found, resolved = scope.lookup(head)
            if found:
                value = resolved
                for name in path:
                    value = member(value, name, expression)
        if isinstance(value, bool) or not isinstance(value, (str, int, Sym)):
            # ARM writes these its own way ('True', JSON): not folded.
            value = Sym(expression, expression)
        if isinstance(value, Sym):
            known = False
            quoted = value.text.startswith("'") and value.text.endswith("'") and len(value.text) > 1
            # A symbolic string (itself an interpolation) is spliced in, not nested.
            parts.append(value.text[1:-1] if quoted else "${" + value.text + "}")
        else:
            parts.append(str(value))
    parts.append(template[position:])
    joined = "".join(parts)
    return joined if known else Sym("'" + joined + "'", template)


def member(value: Any, name: Any, node: Any) -> Any:
    if isinstance(value, dict) and isinstance(name, str):
        if name not in value:
            raise ShapeError(f"the object {text(value)} has no property '{name}'")
        return value[name]
    if isinstance(value, list) and isinstance(name, int) and not isinstance(name, bool):
        if not 0 <= name < len(value):
            raise ShapeError(f"index {name} is outside {text(value)}")
        return value[name]
    if isinstance(name, str) and name.isidentifier():
        return Sym(f"{text(value)}.{name}", node)
    return Sym(f"{text(value)}[{text(name)}]", node)


def operator(node: dict, scope: Scope) -> Any:
    kind = node["operator"]["type"]
    operands = node["operator"]["operands"]
    if kind == "conditional":
        condition = evaluate(operands["condition"], scope)
        if isinstance(condition, bool):
            return evaluate(operands["true_value" if condition else "false_value"], scope)
        yes, no = evaluate(operands["true_value"], scope), evaluate(operands["false_value"], scope)
        return Sym(f"{text(condition)} ? {text(yes)} : {text(no)}", node)
    if kind == "not":
        value = evaluate(operands["bool_value"], scope)
        return (not value) if isinstance(value, bool) else Sym(f"!{text(value)}", node)
    if kind == "property_accessor":
        # pycep nests a.b.c as accessor(a, accessor(b, c)).
        value = evaluate(operands["operand_1"], scope)
        rest = operands["operand_2"]
        while isinstance(rest, dict) and rest.get("operator", {}).get("type") == "property_accessor":
            value = member(value, rest["operator"]["operands"]["operand_1"], node)
            rest = rest["operator"]["operands"]["operand_2"]
        if isinstance(rest, str):
            return member(value, rest, node)
        return Sym(f"{text(value)}.{text(evaluate(rest, scope))}", node)
    if kind == "index_accessor":
        return member(evaluate(operands["operand_1"], scope), evaluate(operands["operand_2"], scope), node)
    left, right = evaluate(operands["operand_1"], scope), evaluate(operands["operand_2"], scope)
    binary = {
        "and": ("&&", lambda a, b: a and b, bool),
        "or": ("||", lambda a, b: a or b, bool),
        "equals": ("==", lambda a, b: a == b, object),
        "not_equals": ("!=", lambda a, b: a != b, object),
        "add": ("+", lambda a, b: a + b, int),
    }
    if kind not in binary:
        raise ShapeError(f"operator '{kind}' is not one this evaluator folds")
    symbol, apply, kind_type = binary[kind]
    if concrete(left) and concrete(right) and isinstance(left, kind_type) and isinstance(right, kind_type):
        return apply(left, right)
    return Sym(f"{text(left)} {symbol} {text(right)}", node)


def function(node: dict, scope: Scope) -> Any:
    call = node["function"]
    name = call["type"]
    args = [evaluate(arg, scope) for arg in (call.get("parameters") or {}).values() if arg is not None]
    known = all(concrete(arg) for arg in args)
    value: Any = None
    if known and name == "empty" and len(args) == 1:
        value = len(args[0]) == 0 if args[0] is not None else True
    elif known and name == "length" and len(args) == 1:
        value = len(args[0])
    elif known and name in ("to_lower", "to_upper") and isinstance(args[0], str):
        value = args[0].lower() if name == "to_lower" else args[0].upper()
    elif name == "union" and all(isinstance(arg, dict) for arg in args):
        # Objects whose values may be symbolic. ARM merges shared nested objects deeply; the
        # templates union disjoint groups of settings, and anything else is refused.
        value = {}
        for arg in args:
            shared = set(value) & set(arg)
            if shared:
                raise ShapeError(f"union() of objects sharing {', '.join(sorted(shared))} is not folded")
            value.update(arg)
    elif name == "concat" and all(isinstance(arg, list) for arg in args):
        value = [item for arg in args for item in arg]
    elif name == "string" and len(args) == 1 and isinstance(args[0], str):
        value = args[0]
    else:
        value = Sym(f"{camel(name)}({', '.join(text(arg) for arg in args)})", node)
    if call.get("property_name"):
        return member(value, call["property_name"], node)
    return value


def expand(conf: dict, scope: Scope) -> list[tuple[Scope, Any]]:
    """The instances of a conditional and/or looped body: (scope with the loop item, body)."""
    loop = conf.get("loop_type")
    if loop is None:
        bindings: list[dict[str, Any]] = [{}]
    else:
        detail = loop["detail"]
        source = evaluate(detail.get("array_name", detail.get("object_name")), scope)
        # The items may be known only at deployment; how many there are must not.
        if not isinstance(source, (list, dict)):
            raise ShapeError(f"a loop runs over {text(source)}, which this shape does not decide")
        if loop["type"] == "object":
            # items() lists an object's properties sorted by key, as ARM does.
            source = [{"key": key, "value": source[key]} for key in sorted(source)]
        bindings = []
        for index, item in enumerate(source):
            bound = {detail["item_name"]: item}
            if detail.get("index_name"):
                bound[detail["index_name"]] = index
            bindings.append(bound)
    instances = []
    for bound in bindings:
        inner = scope.child(bound) if bound else scope
        condition = conf.get("condition")
        if condition is not None:
            decided = evaluate(condition, inner)
            if not isinstance(decided, bool):
                raise ShapeError(f"the condition {text(decided)} is not decided by this shape")
            if not decided:
                continue
        instances.append((inner, conf["config"]))
    return instances


def instances(conf: Any, scope: Scope) -> list[tuple[str, Scope, Any]]:
    """(name suffix, scope, body) of each deployed instance of a resource or module."""
    if not wrapped(conf):
        return [("", scope, conf)]
    looped = "loop_type" in conf and conf["loop_type"] is not None
    return [(f"[{i}]" if looped else "", inner, body) for i, (inner, body) in enumerate(expand(conf, scope))]


def check_parameter(path: str, name: str, declaration: dict, value: Any) -> None:
    if not concrete(value):
        return
    expected = TYPES.get(declaration["type"])
    if expected is not None and (not isinstance(value, expected) or (expected is int and isinstance(value, bool))):
        raise ShapeError(f"{path}: parameter '{name}' is declared {declaration['type']}, given {text(value)}")
    for decorator in declaration.get("decorators") or []:
        kind, argument = decorator["type"], decorator.get("argument")
        broken = (
            (kind == "allowed" and value not in argument)
            or (kind == "min_value" and value < argument)
            or (kind == "max_value" and value > argument)
            or (kind == "min_length" and len(value) < argument)
            or (kind == "max_length" and len(value) > argument)
        )
        if broken:
            raise ShapeError(f"{path}: parameter '{name}' = {text(value)} breaks @{camel(kind)}({text(argument)})")


class Shape:
    """One parameter set evaluated over main.bicep and the modules it deploys."""

    def __init__(self, infra: Path, given: dict[str, Any]) -> None:
        self.infra = infra
        self.parser = BicepParser(add_line_numbers=True)
        self.parsed: dict[Path, dict] = {}
        self.resources: list[dict] = []
        # Per deployed file, its first instance: (parameter values, {resource name: [instance bodies]}).
        self.files: dict[Path, tuple[dict[str, Any], dict[str, list[tuple[str, Any]]]]] = {}
        self.parameters = self.render(infra / "main.bicep", given, "main")

    def parse(self, path: Path) -> dict:
        if path not in self.parsed:
            self.parsed[path] = self.parser.parse(file_path=path)
        return self.parsed[path]

    def render(self, path: Path, given: dict[str, Any], module: str) -> dict[str, Any]:
        parsed = self.parse(path)
        relative = path.relative_to(self.infra).as_posix()
        declared = parsed.get("parameters") or {}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise ShapeError(f"{relative} has no parameter {', '.join(repr(n) for n in unknown)}")
        scope = Scope(parsed)
        for name, declaration in declared.items():
            if name in given:
                value = given[name]
            elif declaration.get("default") is not None:
                value = evaluate(declaration["default"], scope)
            else:
                raise ShapeError(f"{relative}: parameter '{name}' has no value")
            check_parameter(relative, name, declaration, value)
            scope.values[name] = value
        first = path not in self.files
        deployed: dict[str, list[tuple[str, Any]]] = {}
        for name, resource in (parsed.get("resources") or {}).items():
            if resource["existing"]:
                continue
            bodies = [(suffix, evaluate(body, inner)) for suffix, inner, body in instances(resource["config"], scope)]
            deployed[name] = bodies
            for suffix, body in bodies:
                self.resources.append(
                    {
                        "module": module,
                        "file": relative,
                        "name": name + suffix,
                        "type": resource["type"],
                        "apiVersion": resource["api_version"],
                        "config": body,
                    }
                )
        if first:
            self.files[path] = (dict(scope.values), deployed)
        for name, call in (parsed.get("modules") or {}).items():
            for suffix, inner, body in instances(call["config"], scope):
                params = {key: evaluate(value, inner) for key, value in (body.get("params") or {}).items() if key not in LINE_KEYS}
                self.render(path.parent / call["detail"]["path"], params, f"{module}/{name}{suffix}")
        return {name: scope.values[name] for name in declared}

    def checkov_definitions(self) -> dict[Path, dict]:
        """Each deployed file as pycep would parse it had the shape been written out: concrete
        parameter values as defaults, conditions and loops expanded, properties folded."""
        shaped = {}
        for path, (values, deployed) in self.files.items():
            template = copy.deepcopy(self.parsed[path])
            for name, declaration in (template.get("parameters") or {}).items():
                if concrete(values.get(name)):
                    declaration["default"] = values[name]
            resources = {}
            for name, resource in (template.get("resources") or {}).items():
                if resource["existing"]:
                    resources[name] = resource
                    continue
                for suffix, body in deployed[name]:
                    instance = dict(resource)
                    instance["config"] = node(body)
                    resources[name + suffix] = instance
            template["resources"] = resources
            shaped[path] = template
        return shaped


def node(value: Any) -> Any:
    """pycep's form of an evaluated value: symbolic parts go back to the nodes they came from."""
    if isinstance(value, Sym):
        return value.node
    if isinstance(value, dict):
        return {key: node(item) for key, item in value.items()}
    if isinstance(value, list):
        return [node(item) for item in value]
    return value


def plain(value: Any) -> Any:
    """JSON form: symbolic values as ARM-style "[<Bicep text>]" strings."""
    if isinstance(value, Sym):
        return f"[{value.text}]"
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def load_parameters(files: list[str]) -> dict[str, Any]:
    given: dict[str, Any] = {}
    for file in files:
        try:
            document = json.loads(Path(file).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ShapeError(f"{file}: {error}") from error
        for name, entry in (document.get("parameters") or {}).items():
            if not isinstance(entry, dict) or "value" not in entry:
                raise ShapeError(f"{file}: parameter '{name}' has no \"value\"")
            given[name] = entry["value"]
    return given


def shape_or_exit(infra: Path, files: list[str], program: str) -> Shape:
    """The shape these parameter files give, or exit 1 naming what the templates refuse."""
    try:
        return Shape(infra, load_parameters(files))
    except ShapeError as error:
        sys.exit(f"{program}: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("infra", type=Path)
    parser.add_argument("parameters", nargs="+")
    args = parser.parse_args()
    shape = shape_or_exit(args.infra, args.parameters, "bicep_shape")
    json.dump({"parameters": plain(shape.parameters), "resources": plain(shape.resources)}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
