"""Independent-engine oracles of the rmmc conformance suite (run by scripts/conformance).

Reads the bundle written by `cargo test --test conformance_bundle` (every rule with
fixtures x every target: the compiled query and files, the fixture and generated
adversarial events mapped by the backends' field maps, and the reference evaluator's
answers under each semantic variant) and runs:

  KQL    Kusto.Language (npm @kusto/language-service-next): parse + semantic analysis
         against declared Defender schemas, one node process for all queries;
         duckdb-kql: the query over the mapped events, now() pinned to the fixture's
         `now` with duckdb-kql's `query_now` (the query text is not changed). Rows are
         compared with the evaluator's; a second run without the `summarize`/`extend`
         lines gives the matched events before aggregation.
  EQL    eql (Elastic's reference implementation, elasticsearch syntax): parse, then
         run over the events (dotted names -> nested objects, event_type from the
         query's category). The window is not in an EQL query: the harness applies the
         rule file's `from` (now-N .. now, both inclusive) before the engine runs.
         The eql engine folds case everywhere, so case-sensitive behaviour is not
         checked by it (events whose outcome depends on case are "not checked").
  Sigma  sigma check (offline validator config, issues fail) over every emitted file
         (rule and correlation documents); pySigma -> KQL (kusto backend, table named
         with set_state query_table) run in duckdb-kql over the events: must give the
         evaluator's matched events. Sigma has no look-back window: the harness applies
         the rule's window before running.

It also merges the results of the pure-Rust oracles (SPL subset engine, rsigma,
escaping property tests) from the results folder, prints one line per
rule x target x oracle, the matrix, and exits 1 on any disagreement.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = ["kql", "spl", "eql", "sigma"]

# ---------------------------------------------------------------------------
# Variants and judging (the same rules as conformance/harness/common.rs)

FOLDS = ["exact", "unicode_fold_documented", "unicode_fold", "fold_everything"]


def parse_key(key):
    parts = key.split("+")
    return parts[0], "ascii_terms" in parts, "end_exclusive" in parts


def judge(events, got, answers, documented, quirk_folds):
    """Per-event judgement of an engine's matched set (see common.rs judge_matched)."""
    doc_u, doc_a, doc_w = documented["unicode_fold"], documented["ascii_terms"], documented["end_exclusive"]

    def is_documented(key):
        fold, a, w = parse_key(key)
        fold_ok = fold == "exact" or (fold == "unicode_fold_documented" and doc_u)
        return fold_ok and (not a or doc_a) and (not w or doc_w)

    def is_quirk(key):
        fold, a, w = parse_key(key)
        fold_ok = fold == "exact" or (fold == "unicode_fold_documented" and doc_u) or fold in quirk_folds
        return fold_ok and (not a or doc_a) and (not w or doc_w)

    sets = {k: set(a["matched"]) for k, a in answers.items()}
    exact = sets["exact"]
    out = {"documented": [], "oracle_limited": [], "disagreements": [], "same_as": None}
    for e in events:
        name = e["name"]
        m = name in got
        if m == (name in exact):
            continue
        what = "%s (%s; %s): engine %s, evaluator %s" % (
            name, e["origin"], e["why"], "matches" if m else "does not match", "does not" if m else "does")
        doc = next((k for k in answers if is_documented(k) and ((name in sets[k]) == m)), None)
        quirk = next((k for k in answers if is_quirk(k) and ((name in sets[k]) == m)), None)
        if doc:
            out["documented"].append("%s [documented: %s]" % (what, doc))
        elif quirk:
            out["oracle_limited"].append("%s [oracle quirk: %s]" % (what, quirk))
        else:
            out["disagreements"].append(what)
    for k in sorted(answers, key=lambda k: (k != "exact", k)):
        if sets[k] == got and (is_documented(k) or is_quirk(k)):
            out["same_as"] = k
            break
    out["verdict"] = ("disagree" if out["disagreements"] else
                      "approximate-as-documented" if out["documented"] else "agree")
    return out


def scalar_text(v):
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dt.datetime,)):
        return rfc3339(v)
    return str(v) if not isinstance(v, (dict, list)) else json.dumps(v, separators=(",", ":"))


def rfc3339(t: dt.datetime) -> str:
    if t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    us = t.microsecond
    if us == 0:
        return base + "Z"
    if us % 1000 == 0:
        return base + ".%03dZ" % (us // 1000)
    return base + ".%06dZ" % us


def parse_time(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(dt.timezone.utc)


def norm_rows(rows, rename):
    out = []
    for r in rows:
        n = {}
        for k, v in r.items():
            k = rename.get(k, k)
            if isinstance(v, list):
                n[k] = sorted(scalar_text(x) for x in v)
            else:
                n[k] = scalar_text(v)
        out.append(n)
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True))


def in_window(line, e, end_inclusive=True):
    now = parse_time(line["now"])
    start = now - dt.timedelta(seconds=line["window_seconds"])
    ts = e["event"].get(line["field_map"]["@timestamp"])
    if not isinstance(ts, str):
        return False
    t = parse_time(ts)
    return start <= t and (t <= now if end_inclusive else t < now)


# ---------------------------------------------------------------------------
# duckdb-kql

DUCK_TYPES = {"string": "VARCHAR", "datetime": "TIMESTAMP", "long": "BIGINT", "int": "INTEGER", "bool": "BOOLEAN"}


def load_table(con, table, columns, events):
    """Create the Defender table (every declared column, real types) plus `__name`,
    holding `events`: one bulk read of a JSON-lines file typed by the declared columns
    (a row at a time through the driver's parameter binding is 100x slower)."""
    con.execute('DROP TABLE IF EXISTS "%s"' % table)
    cols = ", ".join('"%s" %s' % (c, DUCK_TYPES[t]) for c, t in columns)
    con.execute('CREATE TABLE "%s" (%s, "__name" VARCHAR)' % (table, cols))
    if not events:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", encoding="utf-8", delete=False) as f:
        for e in events:
            ev = e["event"]
            row = {}
            for c, t in columns:
                v = ev.get(c)
                if t == "string":
                    # KQL strings are never null: a missing value is "".
                    v = "" if v is None else (v if isinstance(v, str) else json.dumps(v))
                elif v is None:
                    pass
                elif t == "datetime":
                    v = parse_time(v).replace(tzinfo=None).isoformat()
                elif t in ("long", "int"):
                    v = int(v)
                elif t == "bool":
                    v = bool(v) if not isinstance(v, str) else v.lower() == "true"
                row[c] = v
            row["__name"] = e["name"]
            f.write(json.dumps(row) + "\n")
    try:
        types = ", ".join("'%s': '%s'" % (c, DUCK_TYPES[t]) for c, t in columns)
        con.execute("INSERT INTO \"%s\" SELECT * FROM read_json(?, format = 'newline_delimited', "
                    "columns = {%s, '__name': 'VARCHAR'})" % (table, types), [f.name])
    finally:
        os.unlink(f.name)


class DuckTables:
    """The duckdb-kql runs, batched per table: one connection per Defender table for
    the whole suite, holding one rule's events at a time (loaded when a query of
    another rule or event set comes), and each query's rows kept, so the same query
    over the same events (the hunting query's and the custom detection's filter
    lines are often the same) runs once. Query texts are never changed."""

    def __init__(self, schema):
        self.schema = schema
        self.connections = {}  # table -> (connection, key of the events it holds)
        self.results = {}

    def rows(self, line, table, events, query, now):
        import duckdb_kql
        key = (line["rule"], line["target"], tuple(e["name"] for e in events))
        done = self.results.get((table, key, query, now))
        if done is not None:
            return done
        con, held = self.connections.get(table, (None, None))
        if con is None:
            con = duckdb_kql.connect()
            # One core: the suite's other lane runs on the other one.
            con.execute("SET threads = 1")
        if held != key:
            self.connections[table] = (con, None)
            load_table(con, table, self.schema[table], events)
            self.connections[table] = (con, key)
        try:
            rows = duck_rows(duckdb_kql.kql(con, query, query_now=now))
        except Exception:
            # A failed query is a finding; start the next one on a fresh connection.
            con.close()
            del self.connections[table]
            raise
        self.results[(table, key, query, now)] = rows
        return rows


_DUCK = {}


def duck_tables(schema):
    """The run's DuckTables (one per schema)."""
    return _DUCK.setdefault(id(schema), DuckTables(schema))


def duck_rows(rel):
    names = rel.columns
    types = [str(t) for t in rel.types]
    out = []
    for r in rel.fetchall():
        d = {}
        for n, t, v in zip(names, types, r):
            if t == "JSON" and isinstance(v, str):
                v = json.loads(v)
            if isinstance(v, dt.datetime):
                v = rfc3339(v)
            d[n] = v
        out.append(d)
    return out


def filter_only(query: str) -> str:
    keep = [l for l in query.splitlines() if not re.match(r"\s*\|\s*(summarize|extend|project)\b", l)]
    return "\n".join(keep)


# ---------------------------------------------------------------------------
# Oracles

class Results:
    def __init__(self):
        self.lines = []  # dicts: rule, target, oracle, verdict, detail, ...

    def add(self, rule, target, oracle, verdict, detail="", **extra):
        d = {"rule": rule, "target": target, "oracle": oracle, "verdict": verdict, "detail": detail}
        d.update(extra)
        self.lines.append(d)
        return d


def unescape_unicode(query: str) -> str:
    """The query with each `\\uXXXX` escape (UTF-16 units; surrogate pairs joined) replaced
    by its character. rmmc writes non-ASCII characters of KQL literals as `\\u` escapes
    (Azure-Sentinel's CI rejects non-ASCII files); duckdb-kql 1.1.2 does not decode
    `\\u` (it reads `\\u00e4` as `u00e4`), so it runs this text, and Kusto.Language
    first proves both texts are the same query (the `same` check of kusto_check.js)."""
    out, units, i = [], [], 0

    def flush():
        if units:
            out.append(b"".join(u.to_bytes(2, "little") for u in units).decode("utf-16-le", "surrogatepass"))
            units.clear()

    while i < len(query):
        if query[i] == "\\" and query[i + 1:i + 2] == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", query[i + 2:i + 6]):
            units.append(int(query[i + 2:i + 6], 16))
            i += 6
            continue
        flush()
        if query[i] == "\\":
            out.append(query[i:i + 2])
            i += 2
        else:
            out.append(query[i])
            i += 1
    flush()
    return "".join(out)


def form_file(line, suffix):
    """The text of the compiled file whose name ends with `suffix`, or None."""
    return next((t for k, t in sorted(line["files"].items()) if k.endswith(suffix)), None)


def analytics_query(line):
    text = form_file(line, ".analytics.json")
    return None if text is None else json.loads(text)["resources"][0]["properties"]["query"]


def analytics_columns_check(line, columns):
    """Every column the ARM template maps to an entity or a custom detail is one the
    query returns (Sentinel rejects the rule otherwise)."""
    props = json.loads(form_file(line, ".analytics.json"))["resources"][0]["properties"]
    names = {n for n, _ in columns}
    used = [f["columnName"] for m in props.get("entityMappings") or [] for f in m["fieldMappings"]]
    used += list((props.get("customDetails") or {}).values())
    return ["maps column %s, which the query does not return" % c for c in used if c not in names]


def detection_columns_check(line, columns):
    """A Defender XDR custom detection must return Timestamp, ReportId and DeviceId."""
    types = dict(columns)
    want = {"Timestamp": "datetime", "ReportId": "long", "DeviceId": "string"}
    return ["does not return %s:%s (has %s)" % (c, t, types.get(c)) for c, t in want.items() if types.get(c) != t]


KQL_FORMS = {
    "analytics rule": (analytics_query, analytics_columns_check),
    "custom detection": (lambda l: form_file(l, ".detection.kql"), detection_columns_check),
}


def kusto_language(lines, schema, oracles_dir, res, extra_queries, forms=None):
    """Parse + semantic analysis of every KQL query (the hunting query, and each extra
    form in `forms`: name -> (function(line) -> query or None, check(line, result
    columns) -> problems)), and proof that the unescaped text duckdb-kql runs is the
    same query."""
    forms = {"": (lambda l: l["query"], lambda l, c: []), **(forms or {})}
    queries, same = list(extra_queries), []
    for l in lines:
        if l["target"] != "kql":
            continue
        for form, (get, _) in forms.items():
            q = get(l)
            if q is None:
                continue
            qid = "%s|kql|%s" % (l["rule"], form)
            queries.append({"id": qid, "query": q})
            if unescape_unicode(q) != q:
                same.append({"id": qid, "a": q, "b": unescape_unicode(q)})
    node_dir = oracles_dir / "node"
    proc = subprocess.run(["node", str(HERE / "kusto_check.js"), str(node_dir)],
                          input=json.dumps({"schema": schema, "queries": queries, "same": same}),
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError("kusto_check.js failed: " + proc.stderr[-2000:])
    out = json.loads(proc.stdout)
    by_id = {q["id"]: q for q in out["queries"]}
    same_by_id = {c["id"]: c for c in out["same"]}
    for l in lines:
        if l["target"] != "kql":
            continue
        for form, (get, check) in forms.items():
            query = get(l)
            if query is None:
                res.add(l["rule"], "kql", "Kusto.Language (%s)" % form, "disagree", "the %s form is missing" % form)
                continue
            qid = "%s|kql|%s" % (l["rule"], form)
            q = by_id[qid]
            table = l["settings"].get("table")
            declared = dict(schema.get(table, []))
            # The field map must name real columns of the table (a wrong mapping fails).
            unknown = sorted(set(v for v in l["field_map"].values() if v not in declared))
            errs = list(q["errors"]) + (["field map names columns %s that %s does not have" % (unknown, table)] if unknown else [])
            if not query.isascii():
                errs.append("the query is not ASCII")
            errs += check(l, q["columns"])
            sq = same_by_id.get(qid)
            if sq and not sq["ok"]:
                errs.append("the \\u-escaped and the unescaped query differ: " + sq["reason"])
            oracle = "Kusto.Language" + (" (%s)" % form if form else "")
            if errs:
                res.add(l["rule"], "kql", oracle, "disagree", "; ".join(errs))
            else:
                cols = ", ".join("%s:%s" % (n, t) for n, t in q["columns"])
                extra = "; \\u escapes read back as the same literals" if sq else ""
                res.add(l["rule"], "kql", oracle, "agree", "parse + semantic analysis clean%s; result (%s)" % (extra, cols),
                        columns=q["columns"])
    return out["version"], by_id


def run_duck_kql(line, query, events, schema, label, documented, quirks, compare_rows):
    duck = duck_tables(schema)
    table = line["kql_table"]
    now = parse_time(line["now"])
    query = unescape_unicode(query)
    got = {r["__name"] for r in duck.rows(line, table, events, filter_only(query), now)}
    j = judge(events, got, line["answers"], documented, quirks)
    detail = "%d events, %d matched" % (len(events), len(got))
    if compare_rows and line["aggregation"]:
        if j["same_as"]:
            have = norm_rows(duck.rows(line, table, events, query, now), {})
            rename = dict(line["field_map"])
            want = norm_rows(line["answers"][j["same_as"]]["rows"], rename)
            if have == want:
                detail += "; %d rows equal the evaluator's (%s)" % (len(have), j["same_as"])
            else:
                j["disagreements"].append("result rows differ:\n      evaluator %s\n      engine    %s" % (
                    json.dumps(want, ensure_ascii=False), json.dumps(have, ensure_ascii=False)))
                j["verdict"] = "disagree"
        else:
            detail += "; rows not compared (matched events differ)"
    return j, detail, got


def duck_kql_all(lines, schema, res):
    for l in lines:
        if l["target"] != "kql":
            continue
        l["kql_table"] = l["settings"]["table"]
        try:
            j, detail, _ = run_duck_kql(l, l["query"], l["events"], schema, "duckdb-kql", l["documented"],
                                        ["unicode_fold"], True)
        except Exception as e:  # an unsupported construct is a finding, never a pass
            res.add(l["rule"], "kql", "duckdb-kql", "disagree", "engine error: %s: %s" % (type(e).__name__, e))
            continue
        res.add(l["rule"], "kql", "duckdb-kql", j["verdict"], detail, **{k: j[k] for k in ("documented", "oracle_limited", "disagreements")},
                note="now() pinned with query_now; DuckDB lower()/RE2 (?i) fold Unicode (a duckdb-kql deviation from KQL's ASCII-only folding): events explained only by that are not checked")


# The rules' duckdb-kql runs, shared out to worker processes (forked: each reads its part
# of the bundle from this module, and has its own connections).
_PARTS = []


def duck_kql_both(lines, schema, res):
    """The hunting query's and the custom detection's duckdb-kql runs."""
    duck_kql_all(lines, schema, res)
    duck_kql_detection(lines, schema, res)


def _duck_part(i):
    res = Results()
    duck_kql_both(*_PARTS[i], res)
    return res.lines


def duck_kql_processes(lines, schema, res, processes):
    """duck_kql_all and duck_kql_detection over `processes` processes (every other
    rule to each). The suite runs this beside the other lane's steps: two processes
    here take the other core's idle time at the end of that lane, where one left it idle."""
    kql = [l for l in lines if l["target"] == "kql"]
    if processes <= 1:
        duck_kql_both(kql, schema, res)
        return
    import multiprocessing
    _PARTS[:] = [(kql[i::processes], schema) for i in range(processes)]
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for part in pool.map(_duck_part, range(processes)):
            res.lines.extend(part)
    _PARTS.clear()


def duck_kql_detection(lines, schema, res):
    """The Defender XDR custom-detection form in duckdb-kql: the same groups and
    outputs as the evaluator (the hunting query's rows), and per group the Timestamp,
    ReportId and DeviceId of its latest matched event."""
    for l in lines:
        if l["target"] != "kql":
            continue
        oracle = "duckdb-kql (custom detection)"
        query = form_file(l, ".detection.kql")
        if query is None:
            res.add(l["rule"], "kql", oracle, "disagree", "no custom detection form")
            continue
        if not l["aggregation"]:
            # Events are returned as they are, with their own Timestamp, ReportId, DeviceId.
            try:
                j, detail, _ = run_duck_kql(l, query, l["events"], schema, oracle, l["documented"], ["unicode_fold"], True)
            except Exception as e:
                res.add(l["rule"], "kql", oracle, "disagree", "engine error: %s: %s" % (type(e).__name__, e))
                continue
            res.add(l["rule"], "kql", oracle, j["verdict"], detail + "; events returned whole",
                    **{k: j[k] for k in ("documented", "oracle_limited", "disagreements")})
            continue
        try:
            verdict, detail, problems = detection_rows(l, query, schema)
        except Exception as e:
            res.add(l["rule"], "kql", oracle, "disagree", "engine error: %s: %s" % (type(e).__name__, e))
            continue
        res.add(l["rule"], "kql", oracle, verdict, detail, disagreements=problems,
                note="custom detection: rows compared with the evaluator's after taking Timestamp/ReportId/DeviceId "
                     "off, which must be those of the group's latest matched event")


def detection_rows(l, query, schema):
    fm = l["field_map"]
    ts_col, report_col, device_col = fm["@timestamp"], fm["event.id"], fm["host.id"]
    group_cols = [fm[f] for f in l["aggregation"]["group_by"]]
    duck, table = duck_tables(schema), l["settings"]["table"]
    now = parse_time(l["now"])
    query = unescape_unicode(query)
    names = {r["__name"] for r in duck.rows(l, table, l["events"], filter_only(query), now)}
    j = judge(l["events"], names, l["answers"], l["documented"], ["unicode_fold"])
    if not j["same_as"]:
        return j["verdict"], "%d matched; rows not compared (matched events differ)" % len(names), j["disagreements"]
    rows = duck.rows(l, table, l["events"], query, now)
    matched = set(l["answers"][j["same_as"]]["matched"])
    groups = defaultdict(list)
    for e in l["events"]:
        if e["name"] in matched:
            key = tuple(scalar_text(e["event"].get(c, "")) for c in group_cols)
            groups[key].append(e["event"])
    problems = []
    stripped = []
    for r in rows:
        r = dict(r)
        latest = {c: r.pop(c, None) for c in (ts_col, report_col)}
        if device_col not in group_cols:
            latest[device_col] = r.pop(device_col, None)
        key = tuple(scalar_text(r.get(c)) for c in group_cols)
        evs = groups.get(key, [])
        if not evs:
            problems.append("row for a group with no matched event: %s" % (key,))
            continue
        newest = max(parse_time(e[ts_col]) for e in evs)
        at_newest = [e for e in evs if parse_time(e[ts_col]) == newest]
        if latest[ts_col] is None or parse_time(latest[ts_col]) != newest:
            problems.append("group %s: Timestamp %s, latest event at %s" % (key, latest[ts_col], rfc3339(newest)))
        if scalar_text(latest[report_col]) not in {scalar_text(e.get(report_col)) for e in at_newest}:
            problems.append("group %s: ReportId %s is not of the latest event" % (key, latest[report_col]))
        if device_col in latest and scalar_text(latest[device_col]) not in {scalar_text(e.get(device_col, "")) for e in at_newest}:
            problems.append("group %s: DeviceId %s is not of the latest event" % (key, latest[device_col]))
        stripped.append(r)
    have = norm_rows(stripped, {})
    want = norm_rows(l["answers"][j["same_as"]]["rows"], dict(fm))
    if have != want:
        problems.append("result rows differ:\n      evaluator %s\n      engine    %s" % (
            json.dumps(want, ensure_ascii=False), json.dumps(have, ensure_ascii=False)))
    verdict = "disagree" if problems or j["disagreements"] else j["verdict"]
    detail = "%d events, %d matched; %d groups equal the hunting query's (%s), each with its latest event's Timestamp, ReportId, DeviceId" % (
        len(l["events"]), len(names), len(have), j["same_as"]) if verdict != "disagree" else "%d events" % len(l["events"])
    return verdict, detail, problems + j["disagreements"]


def nest(flat):
    out = {}
    for k, v in flat.items():
        if k.startswith("@") or "." not in k:
            out[k] = v
            continue
        parts = k.split(".")
        cur = out
        for p in parts[:-1]:
            nxt = cur.get(p)
            if not isinstance(nxt, dict):
                nxt = {}
                cur[p] = nxt
            cur = nxt
        cur[parts[-1]] = v
    return out


EQL_CORRECTIONS = ("harness corrections to eql 1.0.1 toward Elastic's documented semantics: `regex`/`regex~` "
                   "match the whole string (Lucene regexp; eql uses Python re.match, a prefix match), and the "
                   "`:` wildcard's end anchor is \\Z (eql uses $, which also matches before a final newline); "
                   "Lucene's literal ^ and $ are escaped for Python; otherwise the regex runs as Python re, not Lucene")


def lucene_to_python(pattern: str) -> str:
    """A Lucene regexp as a Python `re` pattern, for the syntax rmmc emits: Lucene has
    no anchors, so `^` and `$` outside a class are literals (Python would anchor)."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
        elif c == "[":
            in_class = True
            out.append(c)
            if pattern[i + 1:i + 2] == "^":
                out.append("^")
                i += 1
        elif c in "^$":
            out.append("\\" + c)
        else:
            out.append(c)
        i += 1
    return "".join(out)


def patch_eql():
    """Make eql's regex and wildcard matching whole-string, as Elastic's are, with
    Lucene's literal `^`/`$`."""
    import eql.functions as F

    def match_callback(cls, source_ast, *regex_literals):
        compiled = re.compile("|".join("(?:%s)" % lucene_to_python(r.value) for r in regex_literals),
                              F.regex_flags())

        def callback(source, *_):
            if F.is_string(source):
                return compiled.fullmatch(source) is not None
        return callback

    def match_run(cls, source, *matches):
        if isinstance(source, bytes):
            source = source.decode("utf-8", "ignore")
        if F.is_string(source):
            return re.fullmatch("|".join("(?:%s)" % lucene_to_python(m) for m in matches), source,
                                F.regex_flags()) is not None

    def to_regex(cls, *wildcards):
        out = []
        for w in wildcards:
            pieces = [re.escape(p) for p in F.fold_case(w).split("*")]
            out.append("^" + ".*?".join(pieces) + r"\Z")
        return "|".join(out)

    F.Match.get_callback = classmethod(match_callback)
    F.Match.run = classmethod(match_run)
    F.Wildcard.to_regex = classmethod(to_regex)


def eql_all(lines, res):
    import eql
    patch_eql()
    for l in lines:
        if l["target"] != "eql":
            continue
        if l["fidelity"]["verdict"] == "unsupported":
            u = l["fidelity"]["detail"]
            res.add(l["rule"], "eql", "eql", "unsupported",
                    "no query: profile %s's data (%s) does not record `%s`: %s" % (l["profile"], u["data"], u["field"], u["reason"]))
            continue
        rule_json = next((json.loads(t) for p, t in l["files"].items() if p.endswith(".ndjson")), None) or {}
        # An alerting rule: Kibana runs it every `interval` over `from`..now. Runs
        # without gaps (from >= interval) see every event of the rule's look-back once,
        # so the harness applies the look-back to the events; the look-back is also
        # the alert-suppression duration.
        unit_s = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        frm, interval = rule_json.get("from", ""), rule_json.get("interval", "")
        m, mi = re.fullmatch(r"now-(\d+)([smhd])", frm), re.fullmatch(r"(\d+)([smhd])", interval)
        if not m or not mi:
            res.add(l["rule"], "eql", "eql", "disagree", "rule file from=%r / interval=%r unreadable" % (frm, interval))
            continue
        run_secs = int(m.group(1)) * unit_s[m.group(2)]
        every = int(mi.group(1)) * unit_s[mi.group(2)]
        if run_secs < every:
            res.add(l["rule"], "eql", "eql", "disagree", "from=%s is shorter than interval=%s: events between runs are never read" % (frm, interval))
            continue
        dur = rule_json.get("alert_suppression", {}).get("duration")
        if dur and int(dur["value"]) * unit_s[dur["unit"]] != l["window_seconds"]:
            res.add(l["rule"], "eql", "eql", "disagree", "suppression duration %r is not the rule's window (%ss)" % (dur, l["window_seconds"]))
            continue
        secs = l["window_seconds"]
        window_note = ("runs every %s over from=%s (no gap); the rule's look-back (now-%ds .. now, inclusive) applied "
                       "by the harness" % (interval, frm, secs))
        query = l["query"].strip()
        category = query.split()[0]
        try:
            with eql.parser.elasticsearch_syntax:
                q = eql.parse_query(query)
        except Exception as e:
            res.add(l["rule"], "eql", "eql", "disagree", "eql does not parse the query: %s" % e)
            continue
        events = [e for e in l["events"] if in_window(l, e)]
        data = []
        for e in events:
            d = nest(e["event"])
            d["event_type"] = category
            d["__name"] = e["name"]
            data.append(d)
        got = set()
        engine = eql.PythonEngine()
        engine.add_query(q)
        engine.add_output_hook(lambda out: got.update(ev.data["__name"] for ev in out.events))
        engine.stream_events([eql.Event.from_data(d) for d in data])
        # Events outside the window count as not matched (the window is the rule's).
        j = judge(l["events"], got, l["answers"], l["documented"], ["fold_everything"])
        # eql folds by lower-casing values with Python's str.lower(), which turns some
        # letters into two code points (U+0130 "İ" -> "i̇"): a pattern holding such a
        # letter can never match in eql, though it does in Elastic. Not checked by eql.
        by_name = {e["name"]: e for e in l["events"]}
        keep = []
        for d in j["disagreements"]:
            ev = by_name.get(d.split(" ", 1)[0], {}).get("event", {})
            texts = [v for v in ev.values() if isinstance(v, str)] + re.findall(r'"([^"]*)"', l["query"])
            if any(len(c.lower()) != 1 for t in texts for c in t):
                j["oracle_limited"].append(d + " [oracle quirk: eql lower-cases to several code points]")
            else:
                keep.append(d)
        j["disagreements"] = keep
        if not keep and j["verdict"] == "disagree":
            j["verdict"] = "approximate-as-documented" if j["documented"] else "agree"
        detail = "%d events in the window, %d matched; %s" % (len(events), len(got), window_note)
        # Near misses of the profile's event selection (Defend's process stream also
        # holds process ends): each matched event again as an event the selection
        # leaves out must not match. Values are single keywords: Elasticsearch matches
        # one element of Defend's `["start"]` arrays alike, and eql's PythonEngine
        # compares a list whole (`==` is false, `in` raises).
        selection = l.get("event_selection") or {}
        if selection and got:
            misses = []
            for d in data:
                if d["__name"] not in got:
                    continue
                miss = json.loads(json.dumps(d))
                for field, values in selection.items():
                    other = next(v for v in ("end", "info", "start", "other") if v not in values)
                    node = miss
                    *path, last = field.split(".")
                    for part in path:
                        node = node.setdefault(part, {})
                    node[last] = other
                miss["__name"] = d["__name"] + " (not selected: %s)" % ", ".join(
                    "%s outside %s" % (f, v) for f, v in sorted(selection.items()))
                misses.append(miss)
            wrong = []
            engine = eql.PythonEngine()
            engine.add_query(q)
            engine.add_output_hook(lambda out: wrong.extend(ev.data["__name"] for ev in out.events))
            engine.stream_events([eql.Event.from_data(m) for m in misses])
            for name in wrong:
                j["disagreements"].append(name + " matched: the query reads events its profile's data source does not select")
            if wrong:
                j["verdict"] = "disagree"
            detail += "; %d near misses outside the event selection, %d matched" % (len(misses), len(wrong))
        read = set(re.findall(r"[\w.@]+", l["query"]))
        subs = ["%s as %s" % (c, f) for c, f in sorted(l.get("substitutes", {}).items()) if f in read]
        if subs:
            # The events carry the canonical values in the fields that stand in for
            # them, so a match proves the rewritten query; what the substitution changes
            # in meaning is declared in the verdict (FIDELITY.md), not observable here.
            detail += "; fixture fields mapped into the rewrite (%s; meaning change declared)" % ", ".join(subs)
            if j["verdict"] == "agree":
                j["verdict"] = "approximate-as-documented"
        if l["aggregation"] and j["verdict"] == "agree":
            j["verdict"] = "approximate-as-documented"
            detail += "; aggregation not expressible in EQL (documented): matched events compared, not rows"
        res.add(l["rule"], "eql", "eql", j["verdict"], detail,
                **{k: j[k] for k in ("documented", "oracle_limited", "disagreements")},
                note="the eql engine folds case everywhere (==, in, like, regex too): case-sensitive behaviour is not checked by it; " + EQL_CORRECTIONS)


def sigma_check(lines, oracles_dir, res):
    """`sigma check` over the pack as written (base rules and correlation files, under
    their own names), then the same validators in-process per rule for attribution."""
    tmp = Path(tempfile.mkdtemp(prefix="rmmc-sigma-"))
    files_of = defaultdict(list)
    for l in lines:
        if l["target"] != "sigma":
            continue
        for p, text in sorted(l["files"].items()):
            if p.endswith((".yml", ".yaml")):
                # Each rule is built alone, so two rules of one tool and category
                # (a Sentinel rule and its LOLRMM additions) can name their files
                # alike: a folder per rule keeps one from overwriting the other.
                f = tmp / l["rule"] / p
                f.parent.mkdir(parents=True, exist_ok=True)
                f.write_text(text, encoding="utf-8")
                files_of[l["rule"]].append(f)
    sigma = oracles_dir / "venv" / "bin" / "sigma"
    # The pack as written (out/sigma/, every rule under its own name): checks across
    # rules, such as duplicate file names, are about the pack, not about the rules
    # built one at a time below (alone, two rules of one tool and category share a name).
    proc = subprocess.run([str(sigma), "check", "-c", str(HERE / "sigma_validation.yml"), "--fail-on-error",
                           "--fail-on-issues", str(HERE.parent / "out" / "sigma")],
                          capture_output=True, text=True, check=False)
    # Per-rule attribution with the same library and configuration in-process (the
    # CLI does not name the file of a parse error): a rule's files are loaded together,
    # so its correlation resolves the base rule's name.
    from sigma.collection import SigmaCollection
    from sigma.plugins import InstalledSigmaPlugins
    from sigma.validation import SigmaValidator
    import yaml
    problems = defaultdict(list)
    validators = InstalledSigmaPlugins.autodiscover().validators
    config = yaml.safe_load((HERE / "sigma_validation.yml").read_text())
    for rule, files in files_of.items():
        # A validator per rule: validators remember what they saw (file names, ids),
        # and what is unique across the pack is checked over out/sigma/ above.
        validator = SigmaValidator.from_dict(config, validators)
        coll = SigmaCollection.load_ruleset(files, collect_errors=True)
        for r in coll.rules:
            problems[rule] += ["error: %s" % e for e in getattr(r, "errors", [])]
        try:
            problems[rule] += ["issue: %s" % i for i in validator.validate_rules(coll)]
        except Exception as e:
            problems[rule].append("validator failed: %s" % e)
    for l in lines:
        if l["target"] != "sigma" or l["fidelity"]["verdict"] == "unsupported":
            continue
        p = problems.get(l["rule"])
        if p:
            res.add(l["rule"], "sigma", "sigma check", "disagree",
                    " | ".join(" ".join(x.split()) for x in sorted(set(p))[:4]))
        elif proc.returncode != 0 and not any(problems.values()):
            res.add(l["rule"], "sigma", "sigma check", "disagree",
                    "sigma check failed: " + " ".join((proc.stdout + proc.stderr)[-300:].split()))
        else:
            res.add(l["rule"], "sigma", "sigma check", "agree", "rule and correlation files pass (pySigma and SigmaHQ validators, offline set; issues fail)")
    return proc.returncode


PACK_PIPELINE = "pipelines/rmmc_file_signature_microsoft_xdr.yaml"
# What a Defender column holding a process's path is, per table: the path column and
# the column with the file name at its end (microsoft_xdr maps Sysmon's Image and, for
# process_creation, ParentImage onto the path columns).
DEFENDER_PATHS = {
    "DeviceProcessEvents": [("FolderPath", "FileName"), ("InitiatingProcessFolderPath", "InitiatingProcessFileName")],
    "DeviceNetworkEvents": [("InitiatingProcessFolderPath", "InitiatingProcessFileName")],
}


def defender_event(table, ev, line):
    """A Defender event as the real table holds it: a path column ends with the file
    name column (`FolderPath` = `...\\NetSupport.exe` when `FileName` is
    `NetSupport.exe`). Fixtures give the file name; the path is made in a fixed folder
    when missing. Returns None for an event no real table holds (a file name with a
    backslash, or a path that does not end with the file name), and, since the Sigma
    rule reads both the file name and the path from the path column (`Image`), for an
    event with a file name and no path where the rule reads the path (it would see the
    made-up folder), or a path and no file name where it reads the file name.
    `line`: the event's bundle line (its `field_map` and the canonical fields the rule
    `reads`)."""
    out = dict(ev)
    canonical = {col: f for f, col in line["field_map"].items()}
    reads = set(line.get("reads", []))
    text = lambda v: isinstance(v, str) and v != ""
    for path_col, name_col in DEFENDER_PATHS.get(table, []):
        name = out.get(name_col)
        has_path = text(out.get(path_col))
        if not text(name):
            if has_path and canonical.get(name_col) in reads:
                return None
            continue
        if not has_path and canonical.get(path_col) in reads:
            return None
        if "\\" in name:
            return None
        path = out.get(path_col)
        if isinstance(path, str) and path:
            if not path.lower().endswith("\\" + name.lower()):
                return None
        else:
            out[path_col] = "C:\\rmmc-fixture\\" + name
    return out


def sigma_backends(root):
    """pySigma backends as a user runs them: kusto with the pack's file_signature
    pipeline and microsoft_xdr; splunk with splunk_windows; eql with ecs_windows."""
    from sigma.backends.elasticsearch import EqlBackend
    from sigma.backends.kusto import KustoBackend
    from sigma.backends.splunk import SplunkBackend
    from sigma.pipelines.elasticsearch import ecs_windows
    from sigma.pipelines.microsoftxdr import microsoft_xdr_pipeline
    from sigma.pipelines.splunk import splunk_windows_pipeline
    from sigma.processing.pipeline import ProcessingPipeline
    pack = ProcessingPipeline.from_yaml((root / "out" / "sigma" / PACK_PIPELINE).read_text(encoding="utf-8"))
    return {
        "kusto": lambda: KustoBackend(processing_pipeline=pack + microsoft_xdr_pipeline()),
        "splunk": lambda: SplunkBackend(processing_pipeline=splunk_windows_pipeline()),
        "eql": lambda: EqlBackend(processing_pipeline=ecs_windows()),
    }


def base_rule_text(files):
    """The base rule of a rule's Sigma files (a correlation is a file of its own)."""
    return next(t for p, t in sorted(files.items())
                if p.endswith((".yml", ".yaml")) and not Path(p).name.startswith("correlation_"))


def sigma_profiles(l, with_defender=True):
    """(profile label, files, documented) of a Sigma bundle line: the default profile
    (the Sigma taxonomy), unless the rule is unsupported there, and the `defender`
    profile (Defender column names)."""
    out = []
    if l["fidelity"]["verdict"] != "unsupported":
        out.append(("default", l["files"], l["documented"]))
    d = l.get("defender", {})
    if with_defender and "files" in d and d["fidelity"]["verdict"] != "unsupported":
        out.append(("defender", d["files"], d["documented"]))
    return out


def sigma_unsupported(l, res, oracle):
    """Record a rule the default Sigma profile cannot express (no file written)."""
    u = l["fidelity"]["detail"]
    res.add(l["rule"], "sigma", oracle, "unsupported",
            "no file: profile %s's data (%s) does not record `%s`: %s" % (l["profile"], u["data"], u["field"], u["reason"]))


def sigma_kusto(lines, schema, res, by_rule, root):
    """pySigma -> KQL (kusto backend, the pack's pipeline + microsoft_xdr, as a user
    runs it), executed in duckdb-kql over the fixture events in Defender columns."""
    from sigma.collection import SigmaCollection
    from sigma.rule import SigmaRule
    backends = sigma_backends(root)
    for l in lines:
        if l["target"] != "sigma":
            continue
        kql_line = by_rule[l["rule"]]["kql"]
        table = kql_line["settings"]["table"]
        if l["fidelity"]["verdict"] == "unsupported":
            sigma_unsupported(l, res, "pySigma microsoft_xdr->duckdb-kql")
        # The default profile's conversion runs in duckdb-kql; the defender profile's is
        # checked for conversion (sigma_convert) and by rsigma over Defender-named events,
        # which keeps the suite's run time down.
        for profile, files, documented in sigma_profiles(l, with_defender=False):
            oracle = "pySigma microsoft_xdr->duckdb-kql" + ("" if profile == "default" else " (%s)" % profile)
            try:
                coll = SigmaCollection.from_yaml(base_rule_text(files), collect_errors=True)
                errors = [str(e) for r in coll.rules for e in getattr(r, "errors", [])]
                if errors:
                    raise ValueError("pySigma rejects the rule: " + "; ".join(errors))
                query = backends["kusto"]().convert(SigmaCollection([r for r in coll.rules if isinstance(r, SigmaRule)]))[0]
                if not query.lstrip().startswith(table):
                    raise ValueError("converted query reads %r, not %s" % (query.split()[0], table))
            except Exception as e:
                res.add(l["rule"], "sigma", oracle, "disagree", "conversion failed: %s" % e)
                continue
            # No look-back window in Sigma: apply the rule's window to the events first.
            events, skipped = [], 0
            for e in kql_line["events"]:
                d = defender_event(table, e["event"], kql_line)
                if d is None:
                    skipped += 1
                elif in_window(kql_line, e):
                    events.append(dict(e, event=d))
            line = dict(l, kql_table=table, answers=kql_line["answers"])
            kept = {e["name"] for e in kql_line["events"] if defender_event(table, e["event"], kql_line) is not None}
            try:
                _, detail, got = run_duck_kql(line, query, events, schema, "pysigma", documented, ["unicode_fold"], False)
                j = judge([e for e in kql_line["events"] if e["name"] in kept], got, kql_line["answers"],
                          documented, ["unicode_fold"])
            except Exception as e:
                res.add(l["rule"], "sigma", oracle, "disagree", "engine error on %r: %s" % (query, e))
                continue
            if skipped:
                detail += "; %d events not checked (no Defender table holds them: a file name with a backslash, a path not ending with it, or one of the two missing where the rule reads it from the path)" % skipped
            res.add(l["rule"], "sigma", oracle, j["verdict"],
                    "%s; window applied by the harness (Sigma has none); query: %s" % (detail, " ".join(query.split())[:300]),
                    **{k: j[k] for k in ("documented", "oracle_limited", "disagreements")})


def sigma_convert(lines, oracles_dir, res, root):
    """Every emitted Sigma rule converted by pySigma for kusto (microsoft_xdr + the
    pack's pipeline), splunk (splunk_windows) and eql (ecs_windows), in-process per
    rule for attribution; then sigma-cli over the whole out/sigma/ folder per backend,
    as the README tells users to run it (correlation files left out with -P: the
    kusto and eql backends have no correlations)."""
    from sigma.collection import SigmaCollection
    from sigma.rule import SigmaRule
    backends = sigma_backends(root)
    for l in lines:
        if l["target"] != "sigma":
            continue
        for profile, files, _ in sigma_profiles(l):
            failures = []
            # Defender column names are for microsoft_xdr only; the Sysmon-field
            # pipelines of splunk and eql are for the taxonomy (the default).
            for name, make in backends.items():
                if profile == "defender" and name != "kusto":
                    continue
                try:
                    coll = SigmaCollection.from_yaml(base_rule_text(files), collect_errors=True)
                    out = make().convert(SigmaCollection([r for r in coll.rules if isinstance(r, SigmaRule)]))
                    if not out or not all(isinstance(q, str) and q.strip() for q in out):
                        failures.append("%s: empty conversion" % name)
                except Exception as e:
                    failures.append("%s: %s" % (name, " ".join(str(e).split())[:200]))
            oracle = "pySigma convert" + ("" if profile == "default" else " (%s)" % profile)
            if failures:
                res.add(l["rule"], "sigma", oracle, "disagree", " | ".join(failures))
            elif profile == "defender":
                res.add(l["rule"], "sigma", oracle, "agree", "converts with kusto (microsoft_xdr + pack pipeline)")
            else:
                res.add(l["rule"], "sigma", oracle, "agree", "converts with kusto (microsoft_xdr + pack pipeline), splunk (splunk_windows), eql (ecs_windows)")
    sigma = oracles_dir / "venv" / "bin" / "sigma"
    folder = root / "out" / "sigma"
    runs = {
        "kusto": ["-t", "kusto", "-p", str(folder / PACK_PIPELINE), "-p", "microsoft_xdr"],
        "splunk": ["-t", "splunk", "-p", "splunk_windows"],
        "eql": ["-t", "eql", "-p", "ecs_windows"],
    }
    summary = {}
    for name, args in runs.items():
        proc = subprocess.run([str(sigma), "convert", *args, "-P", "[!c]*.yml", str(folder)],
                              capture_output=True, text=True, check=False)
        summary[name] = (proc.returncode, (proc.stdout + proc.stderr)[-400:])
    return summary


def rust_results(results_dir, res):
    versions = {}
    for name, oracle in [("spl.json", "spl-subset-engine"), ("sigma.json", None), ("sigma_defender.json", None)]:
        p = results_dir / name
        if not p.exists():
            continue
        for d in json.loads(p.read_text()):
            res.add(d["rule"], d["target"], d.get("oracle", oracle), d["verdict"], d.get("rows", d.get("detail", "")),
                    **{k: d.get(k, []) for k in ("documented", "oracle_limited", "disagreements")},
                    note=d.get("note", ""))
    return versions


# ---------------------------------------------------------------------------
# Output

# A cell shows its worst verdict; `unsupported` (the default profile writes no file)
# outranks what other profiles' oracles found, so it is never hidden behind them.
ORDER = {"disagree": 0, "unsupported": 1, "approximate-as-documented": 2, "agree": 3, "not checked": 4}


def cell(results, rule, target):
    rs = [r for r in results if r["rule"] == rule and r["target"] == target]
    if not rs:
        return "not checked"
    return min((r["verdict"] for r in rs), key=lambda v: ORDER.get(v, 0))


def print_matrix(res, rules):
    width = max([len(r) for r in rules] + [4])
    cw = 26
    print("\n== matrix (rules x targets) ==")
    print("%-*s  %s" % (width, "rule", "  ".join("%-*s" % (cw, t) for t in TARGETS)))
    for r in rules:
        print("%-*s  %s" % (width, r, "  ".join("%-*s" % (cw, cell(res.lines, r, t)) for t in TARGETS)))
    counts = defaultdict(int)
    for r in rules:
        for t in TARGETS:
            counts[cell(res.lines, r, t)] += 1
    print("cells: " + ", ".join("%s %d" % (k, v) for k, v in sorted(counts.items())))
    return counts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--results", required=True, type=Path)
    ap.add_argument("--oracles", required=True, type=Path)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--wait-for", default="", help="comma list of files in --results to wait for before "
                    "merging the Rust steps' results (they run beside this one)")
    ap.add_argument("--or-for", default="", help="a file in --results whose presence ends the wait "
                    "(the other lane ended, e.g. after a failed step)")
    ap.add_argument("--processes", type=int, default=2, help="processes for the duckdb-kql runs")
    args = ap.parse_args()
    t0 = time.time()
    lines = [json.loads(l) for l in args.bundle.read_text(encoding="utf-8").splitlines() if l.strip()]
    schema = {k: v for k, v in json.loads((HERE / "defender_schema.json").read_text()).items() if not k.startswith("_")}
    by_rule = defaultdict(dict)
    for l in lines:
        by_rule[l["rule"]][l["target"]] = l
    rules = sorted(by_rule)
    res = Results()
    import duckdb
    import duckdb_kql
    import eql
    from importlib.metadata import version
    versions = {
        "@kusto/language-service-next": None,
        "duckdb-kql": version("duckdb-kql"), "duckdb": duckdb.__version__, "eql": eql.__version__,
        "pySigma": version("pySigma"), "sigma-cli": version("sigma-cli"),
        "pySigma-backend-kusto": version("pySigma-backend-kusto"),
        "pySigma-backend-splunk": version("pySigma-backend-splunk"),
        "pySigma-backend-elasticsearch": version("pySigma-backend-elasticsearch"),
    }
    timings = {}
    t = time.time(); versions["@kusto/language-service-next"], _ = kusto_language(lines, schema, args.oracles, res, [], KQL_FORMS); timings["Kusto.Language"] = time.time() - t
    t = time.time(); duck_kql_processes(lines, schema, res, args.processes); timings["duckdb-kql"] = time.time() - t
    t = time.time(); eql_all(lines, res); timings["eql"] = time.time() - t
    t = time.time(); sigma_check(lines, args.oracles, res); timings["sigma check"] = time.time() - t
    root = HERE.parent
    t = time.time(); sigma_kusto(lines, schema, res, by_rule, root); timings["pySigma->kusto"] = time.time() - t
    t = time.time(); folder_runs = sigma_convert(lines, args.oracles, res, root); timings["pySigma convert"] = time.time() - t
    wanted = [args.results / f for f in args.wait_for.split(",") if f]
    waited = time.time()
    while wanted and not all(p.exists() for p in wanted) and not (
            args.or_for and (args.results / args.or_for).exists()):
        time.sleep(0.5)
    if wanted:
        timings["waiting for the Rust steps"] = time.time() - waited
    rust_results(args.results, res)

    print("== oracle versions ==")
    for k, v in versions.items():
        print("  %s %s" % (k, v))
    print("== per rule x target x oracle ==")
    for r in sorted(res.lines, key=lambda r: (r["rule"], TARGETS.index(r["target"]), r["oracle"])):
        n_doc, n_lim, n_dis = len(r.get("documented", [])), len(r.get("oracle_limited", [])), len(r.get("disagreements", []))
        print("%-40s %-6s %-28s %-26s %s%s" % (r["rule"], r["target"], r["oracle"], r["verdict"], r["detail"],
              "" if not (n_doc or n_lim) else " [%d documented, %d not checked by this oracle]" % (n_doc, n_lim)))
        show = r.get("disagreements", [])[: (50 if args.verbose else 3)]
        for d in show:
            print("      DISAGREE: " + d)
        if len(r.get("disagreements", [])) > len(show):
            print("      ... %d more" % (len(r["disagreements"]) - len(show)))
        if args.verbose:
            for d in r.get("documented", []) + r.get("oracle_limited", []):
                print("      note: " + d)
    notes = sorted({r["note"] for r in res.lines if r.get("note")})
    print("== notes ==")
    for n in notes:
        print("  - " + n)
    counts = print_matrix(res, rules)
    events = sum(len(by_rule[r]["kql"]["events"]) for r in rules)
    fixture = sum(sum(1 for e in by_rule[r]["kql"]["events"] if e["origin"] == "fixture") for r in rules)
    print("rules %d, fixture events %d, generated adversarial events %d" % (len(rules), fixture, events - fixture))
    print("oracle time: " + ", ".join("%s %.1fs" % (k, v) for k, v in timings.items()) + "; total %.1fs" % (time.time() - t0))
    summary = {"versions": versions, "counts": dict(counts), "rules": len(rules), "fixture_events": fixture,
               "generated_events": events - fixture, "lines": res.lines}
    (args.results / "oracles.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    print("== sigma convert of the whole out/sigma/ folder (sigma-cli, -P '[!c]*.yml') ==")
    folder_failed = False
    for name, (rc, tail) in folder_runs.items():
        print("  %-7s exit %d%s" % (name, rc, "" if rc == 0 else ": " + " ".join(tail.split())[-300:]))
        folder_failed |= rc != 0
    return 1 if counts.get("disagree") or folder_failed else 0


if __name__ == "__main__":
    sys.exit(main())
