"""EQL half of the escaping property test (tests/conformance_escaping.rs): each case's
emitted EQL query must parse with `eql` (elasticsearch syntax) into the same AST shape
as the query for a benign value of the same shape, and the engine must match the probe
values exactly as the reference evaluator does. stdin/stdout JSON."""
import json
import sys

import os

import eql
from eql import ast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracles import patch_eql  # noqa: E402  (whole-string regex, Lucene ^/$ literals)

patch_eql()


def shape(node):
    """The AST with string values blanked."""
    if isinstance(node, ast.String):
        return ("String",)
    if isinstance(node, ast.BaseNode):
        return (type(node).__name__,) + tuple(shape(getattr(node, s)) for s in node.__slots__ if s != "value" or not isinstance(node, ast.String))
    if isinstance(node, (list, tuple)):
        return tuple(shape(x) for x in node)
    return node


def parse(q):
    with eql.parser.elasticsearch_syntax:
        return eql.parse_query(q)


def run(query, value, field):
    out = []
    engine = eql.PythonEngine()
    engine.add_query(query)
    engine.add_output_hook(lambda o: out.extend(o.events))
    category = str(query.first.event_type) if hasattr(query, "first") else "file"
    event = {"event_type": category}
    *parents, leaf = field.split(".")
    node = event
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value
    engine.stream_events([eql.Event.from_data(event)])
    return bool(out)


def main():
    cases = json.load(sys.stdin)["cases"]
    failures = []
    for c in cases:
        try:
            q, b = parse(c["query"]), parse(c["benign"])
        except Exception as e:  # a parse failure is an escaping failure
            failures.append("%r: does not parse: %s" % (c["query"], e))
            continue
        if shape(q) != shape(b):
            failures.append("%r: AST shape differs from the benign query %r" % (c["query"], c["benign"]))
            continue
        for p in c["probes"]:
            v = p["value"]
            # The eql engine folds case by str.lower(); values it changes in length, or
            # whose outcome depends on case, are not probed (Elastic folds otherwise).
            if any(len(ch.lower()) != 1 for ch in v):
                continue
            got = run(q, v, c["field"])
            if got != p["match"]:
                failures.append("%r on %r: engine %s, evaluator %s" % (c["query"], v, got, p["match"]))
    json.dump({"version": eql.__version__, "failures": failures}, sys.stdout)


if __name__ == "__main__":
    main()
