// Kusto.Language (Microsoft's KQL parser and semantic analyzer, npm
// @kusto/language-service-next) over many queries in one process.
// stdin: {"schema": {Table: [[col, type], ...]}, "queries": [{"id", "query"}],
//         "literals": [{"id", "query", "benign", "expected": [string, ...]}],
//         "same": [{"id", "a", "b"}]}
// stdout: {"version", "queries": [{"id", "errors": [...], "columns": [...]}],
//          "literals": [{"id", "ok", "reason"}], "same": [{"id", "ok", "reason"}]}
// "same" asks whether two query texts are the same query: the same tokens, string
// literals compared by their values (so "\u00e4" and "ä" are the same).
"use strict";
const path = require("path");
const fs = require("fs");
const pkg = path.join(path.resolve(process.argv[2]), "node_modules", "@kusto", "language-service-next");
require(path.join(pkg, "bridge.min.js"));
require(path.join(pkg, "Kusto.Language.Bridge.min.js"));
const K = Kusto.Language;
const version = JSON.parse(fs.readFileSync(path.join(pkg, "package.json"), "utf8")).version;

const input = JSON.parse(fs.readFileSync(0, "utf8"));
const tables = [];
for (const [name, cols] of Object.entries(input.schema)) {
  if (name.startsWith("_")) continue;
  const decl = "(" + cols.map(([c, t]) => `['${c}']:${t}`).join(", ") + ")";
  tables.push(new K.Symbols.TableSymbol.$ctor7(name, decl, null));
}
const db = new K.Symbols.DatabaseSymbol.$ctor2("defender", null, tables);
const globals = K.GlobalState.Default.WithDatabase(db);

function analyze(query) {
  const code = K.KustoCode.ParseAndAnalyze(query, globals);
  const diags = code.GetDiagnostics();
  const errors = [];
  for (let i = 0; i < diags.Count; i++) {
    const d = diags.getItem(i);
    // Severity is a string ("Error", "Warning", ...).
    if (String(d.Severity) === "Error") {
      errors.push(`${d.Code} at ${d.Start}: ${d.Message}`);
    }
  }
  const columns = [];
  if (code.ResultType && code.ResultType.Columns) {
    const cs = code.ResultType.Columns;
    for (let i = 0; i < cs.Count; i++) {
      const c = cs.getItem(i);
      columns.push([c.Name, c.Type.Name]);
    }
  }
  return { code, errors, columns };
}

function tokens(code) {
  const out = [];
  let t = code.Syntax.GetFirstToken();
  while (t) {
    out.push({ kind: t.Kind, text: t.Text, value: t.ValueText });
    t = t.GetNextToken();
  }
  return out;
}

const STRING_LITERAL = 322; // SyntaxKind.StringLiteralToken in this build
const result = { version, queries: [], literals: [], same: [] };
for (const q of input.queries || []) {
  const { errors, columns } = analyze(q.query);
  result.queries.push({ id: q.id, errors, columns });
}
for (const c of input.literals || []) {
  const a = analyze(c.query);
  const b = analyze(c.benign);
  let ok = true, reason = "";
  if (a.errors.length) { ok = false; reason = "errors: " + a.errors.join("; "); }
  const ta = tokens(a.code), tb = tokens(b.code);
  const shape = (ts) => ts.map((t) => t.kind === STRING_LITERAL ? "STR" : `${t.kind}:${t.text}`).join(" ");
  if (ok && shape(ta) !== shape(tb)) { ok = false; reason = "token structure differs from the benign query"; }
  if (ok) {
    const lits = ta.filter((t) => t.kind === STRING_LITERAL).map((t) => t.value);
    if (JSON.stringify(lits) !== JSON.stringify(c.expected)) {
      ok = false;
      reason = `literals read back ${JSON.stringify(lits)}, expected ${JSON.stringify(c.expected)}`;
    }
  }
  result.literals.push({ id: c.id, ok, reason });
}
for (const c of input.same || []) {
  const a = analyze(c.a), b = analyze(c.b);
  const read = (ts) => ts.map((t) => t.kind === STRING_LITERAL ? "STR " + JSON.stringify(t.value) : `${t.kind}:${t.text}`);
  const ra = read(tokens(a.code)), rb = read(tokens(b.code));
  let ok = a.errors.length === 0 && b.errors.length === 0, reason = "";
  if (!ok) reason = "errors: " + a.errors.concat(b.errors).join("; ");
  const at = ra.findIndex((t, i) => t !== rb[i]);
  if (ok && (at >= 0 || ra.length !== rb.length)) {
    ok = false;
    reason = `token ${at} differs: ${ra[at]} vs ${rb[at]}`;
  }
  result.same.push({ id: c.id, ok, reason });
}
process.stdout.write(JSON.stringify(result));
