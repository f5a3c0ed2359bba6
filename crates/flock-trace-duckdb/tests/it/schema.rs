//! The `spans` table has Flock's columns, and each column holds what Flock puts there.

use flock_trace_duckdb::{TraceConfig, duckdb};

use crate::{TempDir, read, traced};

/// Flock's columns; no index or key, which DuckDB would rewrite whole at every
/// checkpoint (ADR 0007).
#[test]
fn table_has_flocks_columns_and_no_index() {
    let dir = TempDir::new("columns");
    let path = dir.file("traces.duckdb");
    // Building alone creates the file and its schema.
    let guard = TraceConfig::new(&path).build().unwrap();
    let conn = read(&path);
    let mut stmt = conn
        .prepare(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_name = 'spans' ORDER BY ordinal_position",
        )
        .unwrap();
    let columns: Vec<String> = stmt
        .query_map([], |row| {
            Ok(format!(
                "{} {} {}",
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        columns,
        [
            "trace_id VARCHAR NO",
            "span_id VARCHAR NO",
            "parent_id VARCHAR YES",
            "name VARCHAR NO",
            "service VARCHAR YES",
            "operation VARCHAR YES",
            "kind VARCHAR YES",
            "start_time BIGINT NO",
            "end_time BIGINT NO",
            "duration_ms DOUBLE NO",
            "status_code VARCHAR NO",
            "status_description VARCHAR YES",
            "attributes JSON YES",
            "events JSON YES",
            "links JSON YES",
            "resource JSON YES",
            "created_at TIMESTAMP YES",
        ]
    );
    let mut stmt = conn
        .prepare("SELECT index_name FROM duckdb_indexes() WHERE table_name = 'spans' ORDER BY 1")
        .unwrap();
    let indexes: Vec<String> = stmt
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(indexes.is_empty(), "{indexes:?}");
    drop(conn);
    assert!(guard.shutdown().is_complete());
}

#[test]
fn parents_resolve_and_errors_are_recorded() {
    let dir = TempDir::new("rows");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path)
        .service_name("payments")
        .build()
        .unwrap();
    traced(&guard, || {
        let _root = tracing::info_span!("agent.run", agent = "fraud", ok = true).entered();
        {
            let _flush = tracing::info_span!("batch.flush", batch_size = 2_i64).entered();
            tracing::info!(items = 2_i64, "flushed");
        }
        {
            let _failed = tracing::info_span!("engine.evaluate").entered();
            tracing::error!(error = "card declined", "evaluation failed");
        }
        let _closed = tracing::info_span!(
            "publish",
            otel.status_code = "ERROR",
            otel.status_description = "queue closed"
        )
        .entered();
    });
    assert!(guard.shutdown().is_complete());

    let conn = read(&path);
    let query = |sql: &str| -> Vec<Vec<Option<String>>> {
        let mut stmt = conn.prepare(sql).unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut out = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            let n = row.as_ref().column_count();
            out.push((0..n).map(|i| cell(row.get(i).unwrap())).collect());
        }
        out
    };

    // One trace; every parent id is the span id of a row; only the root has none.
    let ids = query(
        "SELECT count(DISTINCT trace_id), count(*) FILTER (parent_id IS NULL), \
         count(*) FILTER (parent_id IS NOT NULL AND parent_id NOT IN (SELECT span_id FROM spans)) \
         FROM spans",
    );
    assert_eq!(
        ids,
        [vec![Some("1".into()), Some("1".into()), Some("0".into())]]
    );
    let tree = query(
        "SELECT c.name, p.name FROM spans c LEFT JOIN spans p ON c.parent_id = p.span_id ORDER BY c.start_time",
    );
    assert_eq!(
        tree,
        [
            vec![Some("agent.run".into()), None],
            vec![Some("batch.flush".into()), Some("agent.run".into())],
            vec![Some("engine.evaluate".into()), Some("agent.run".into())],
            vec![Some("publish".into()), Some("agent.run".into())],
        ]
    );

    // Ids are lowercase hex of OpenTelemetry's widths.
    let hex = query(
        "SELECT count(*) FROM spans WHERE regexp_full_match(trace_id, '[0-9a-f]{32}') \
         AND regexp_full_match(span_id, '[0-9a-f]{16}')",
    );
    assert_eq!(hex, [vec![Some("4".into())]]);

    let rows = query(
        "SELECT name, service, operation, kind, status_code, status_description, \
         resource->>'$.\"service.name\"', json_type(attributes->'$.ok') \
         FROM spans ORDER BY start_time",
    );
    let rows: Vec<String> = rows
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|cell| cell.unwrap_or_else(|| "NULL".into()))
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect();
    assert_eq!(
        rows,
        [
            "agent.run | agent | run | INTERNAL | UNSET | NULL | payments | BOOLEAN",
            "batch.flush | batch | flush | INTERNAL | UNSET | NULL | payments | NULL",
            "engine.evaluate | engine | evaluate | INTERNAL | ERROR | NULL | payments | NULL",
            "publish | publish | NULL | INTERNAL | ERROR | queue closed | payments | NULL",
        ]
    );

    let s = |v: &str| Some(v.to_owned());
    // Events inside a span keep their name, time and typed attributes.
    let events = query(
        "SELECT events->>'$[0].name', events->'$[0].attributes.items', \
         (events->'$[0].timestamp')::BIGINT BETWEEN start_time AND end_time \
         FROM spans WHERE name = 'batch.flush'",
    );
    assert_eq!(events, [vec![s("flushed"), s("2"), s("true")]]);
    let links = query("SELECT DISTINCT links::VARCHAR FROM spans");
    assert_eq!(links, [vec![s("[]")]]);
}

/// A cell as text, `None` for NULL.
fn cell(value: duckdb::types::Value) -> Option<String> {
    use duckdb::types::Value;
    match value {
        Value::Null => None,
        Value::Boolean(b) => Some(b.to_string()),
        Value::BigInt(i) => Some(i.to_string()),
        Value::UBigInt(i) => Some(i.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::HugeInt(i) => Some(i.to_string()),
        Value::Text(s) => Some(s),
        other => Some(format!("{other:?}")),
    }
}

/// The columns whose content is known keep the compression the table declares
/// (ADR 0007), and stock DuckDB reads the file: FSST for the hex ids, a
/// dictionary for names and codes; attributes are left to DuckDB's analysis.
#[test]
fn ids_and_names_are_stored_with_the_declared_compression() {
    let dir = TempDir::new("compression");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path).build().unwrap();
    traced(&guard, || {
        let _root = tracing::info_span!("batch.run").entered();
        crate::spans(2_000);
    });
    assert!(guard.shutdown().is_complete());
    let out = crate::stock_duckdb(
        "import duckdb, sys\n\
         conn = duckdb.connect(sys.argv[1], read_only=True)\n\
         rows = conn.execute(\"SELECT column_name, string_agg(DISTINCT compression, '/' ORDER BY compression) \
             FROM pragma_storage_info('spans') WHERE segment_type = 'VARCHAR' \
             AND column_name IN ('trace_id', 'span_id', 'parent_id', 'name', 'kind', 'status_code') \
             GROUP BY ALL ORDER BY ALL\").fetchall()\n\
         print(' '.join(f'{c}={m}' for c, m in rows))\n\
         sql = conn.execute(\"SELECT sql FROM duckdb_tables() WHERE table_name = 'spans'\").fetchone()[0]\n\
         print('trace_id VARCHAR USING COMPRESSION FSST' in sql, '\"name\" VARCHAR USING COMPRESSION Dictionary' in sql)",
        &[path.to_str().unwrap()],
    );
    // With 2,000 equal parent ids, DuckDB's own analysis would pick a dictionary.
    assert_eq!(
        out.trim(),
        "kind=Dictionary name=Dictionary parent_id=FSST span_id=FSST status_code=Dictionary trace_id=FSST\n\
         True True"
    );
    assert_eq!(crate::stock_count(&path, "true"), 2_001);
}

/// A steady export stores spans in row groups of 16,384 rows (ADR 0007): it
/// appends to the last, partly filled row group, which DuckDB rewrites whole at the
/// checkpoint, so small row groups keep the file's lock short. 40,001 spans stay
/// below the 40,960 pending spans that make a burst (which keeps DuckDB's default
/// row groups), so every session is a steady one; stock DuckDB reads the file and
/// finds no row group over 16,384 rows.
#[test]
fn spans_are_stored_in_small_row_groups() {
    let dir = TempDir::new("row-groups");
    let path = dir.file("traces.duckdb");
    let guard = TraceConfig::new(&path).build().unwrap();
    traced(&guard, || {
        let _root = tracing::info_span!("batch.run").entered();
        crate::spans(40_000);
    });
    assert!(guard.shutdown().is_complete());
    let out = crate::stock_duckdb(
        "import duckdb, sys\n\
         conn = duckdb.connect(sys.argv[1], read_only=True)\n\
         print(*conn.execute(\"SELECT count(*), max(n), sum(n) FROM (SELECT row_group_id, sum(count) AS n \
             FROM pragma_storage_info('spans') WHERE column_name = 'trace_id' AND segment_type = 'VARCHAR' \
             GROUP BY ALL)\").fetchone())",
        &[path.to_str().unwrap()],
    );
    let [groups, largest, rows]: [usize; 3] = out
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    assert_eq!(rows, 40_001, "{out}");
    assert!(
        largest <= 16_384,
        "{groups} row groups, the largest of {largest} rows"
    );
    assert_eq!(crate::stock_count(&path, "true"), 40_001);
}
