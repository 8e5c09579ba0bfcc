//! Traces of the requests the local server answered: one row each, the oldest deleted past a
//! limit (the table is a log with a retention, not a history: nothing here is in git).

use rusqlite::{OptionalExtension, params};

use crate::{Result, Store};

/// A trace row. `tags` is a JSON array of strings the app writes and reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceRow {
    /// Row id (ignored on insert: SQLite assigns it, never reusing a deleted one).
    pub id: i64,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// `/v1/chat/completions` or `/v1/completions`.
    pub endpoint: String,
    /// The request's `model` as sent.
    pub model: String,
    /// The alias it resolved through.
    pub alias: Option<String>,
    /// The request body (secrets already removed by the caller).
    pub request: String,
    /// The answer's text, or the error message.
    pub response: String,
    /// HTTP status.
    pub status: i64,
    /// Whether it streamed.
    pub stream: bool,
    /// Milliseconds from arrival to the last byte.
    pub latency_ms: i64,
    /// Milliseconds to the first token.
    pub ttft_ms: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Generated tokens.
    pub completion_tokens: i64,
    /// 1, −1, or none.
    pub feedback: Option<i64>,
    /// JSON array of strings.
    pub tags: String,
}

/// Which traces a query selects (every field optional; all must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceQuery {
    /// Only this model name.
    pub model: Option<String>,
    /// `Some(true)`: status < 400; `Some(false)`: status ≥ 400.
    pub ok: Option<bool>,
    /// Text found in the request or the response (case-insensitive for ASCII).
    pub text: Option<String>,
    /// Only traces carrying this tag.
    pub tag: Option<String>,
    /// Only traces created at or after these Unix seconds.
    pub since: Option<i64>,
    /// Newest first, at most this many (none: all).
    pub limit: Option<usize>,
}

/// The figures of one trace that usage statistics need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceFigures {
    /// HTTP status.
    pub status: i64,
    /// Milliseconds to the last byte.
    pub latency_ms: i64,
    /// Milliseconds to the first token (0: none).
    pub ttft_ms: i64,
    /// Prompt tokens.
    pub prompt_tokens: i64,
    /// Generated tokens.
    pub completion_tokens: i64,
}

const COLUMNS: &str = "id, created_at, endpoint, model, alias, request, response, status, stream,
    latency_ms, ttft_ms, prompt_tokens, completion_tokens, feedback, tags";

impl Store {
    /// Records a trace and deletes the oldest beyond `keep` rows, in one transaction; the new
    /// row's id.
    pub fn insert_trace(&self, t: &TraceRow, keep: usize) -> Result<i64> {
        let mut conn = self.conn();
        // A trace is a log line, not a project's state: losing the last few to a power cut is
        // fine, a sync of the disk per request (~3 ms) is not. WAL with NORMAL stays consistent;
        // the connection's next commit at its own level (FULL) syncs these frames too.
        let level: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", 1)?;
        let result = insert_trace(&mut conn, t, keep);
        conn.pragma_update(None, "synchronous", level)?;
        result
    }

    /// The traces `q` selects, newest first.
    pub fn traces(&self, q: &TraceQuery) -> Result<Vec<TraceRow>> {
        let (clause, args) = where_clause(q);
        let limit = q.limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
        let sql = format!("SELECT {COLUMNS} FROM traces{clause} ORDER BY id DESC{limit}");
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), trace_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One trace, if it is still kept.
    pub fn trace(&self, id: i64) -> Result<Option<TraceRow>> {
        let sql = format!("SELECT {COLUMNS} FROM traces WHERE id = ?1");
        Ok(self.conn().query_row(&sql, [id], trace_row).optional()?)
    }

    /// The figures of every trace `q` selects (its `limit` ignored), oldest first.
    pub fn trace_figures(&self, q: &TraceQuery) -> Result<Vec<TraceFigures>> {
        let (clause, args) = where_clause(q);
        let sql = format!(
            "SELECT status, latency_ms, ttft_ms, prompt_tokens, completion_tokens FROM traces{clause}
             ORDER BY id"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok(TraceFigures {
                status: r.get(0)?,
                latency_ms: r.get(1)?,
                ttft_ms: r.get(2)?,
                prompt_tokens: r.get(3)?,
                completion_tokens: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Sets a trace's feedback and tags (JSON array); whether the trace exists.
    pub fn set_trace_feedback(&self, id: i64, feedback: Option<i64>, tags: &str) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE traces SET feedback = ?2, tags = ?3 WHERE id = ?1",
            params![id, feedback, tags],
        )? > 0)
    }
}

fn insert_trace(conn: &mut rusqlite::Connection, t: &TraceRow, keep: usize) -> Result<i64> {
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO traces (created_at, endpoint, model, alias, request, response, status,
           stream, latency_ms, ttft_ms, prompt_tokens, completion_tokens, feedback, tags)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            t.created_at,
            t.endpoint,
            t.model,
            t.alias,
            t.request,
            t.response,
            t.status,
            t.stream,
            t.latency_ms,
            t.ttft_ms,
            t.prompt_tokens,
            t.completion_tokens,
            t.feedback,
            t.tags
        ],
    )?;
    let id = tx.last_insert_rowid();
    // Ids only grow (AUTOINCREMENT), so the newest `keep` have ids above `id - keep`: one index
    // probe, where counting rows (OFFSET) would walk all of them per request. A gap left by a
    // rolled-back insert only keeps a row fewer.
    tx.execute("DELETE FROM traces WHERE id <= ?1", [id - keep.max(1) as i64])?;
    tx.commit()?;
    Ok(id)
}

fn where_clause(q: &TraceQuery) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut conds: Vec<String> = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    let arg = |v: Value, args: &mut Vec<Value>| {
        args.push(v);
        args.len()
    };
    if let Some(m) = &q.model {
        let n = arg(Value::Text(m.clone()), &mut args);
        conds.push(format!("model = ?{n}"));
    }
    match q.ok {
        Some(true) => conds.push("status < 400".into()),
        Some(false) => conds.push("status >= 400".into()),
        None => {}
    }
    if let Some(t) = &q.text {
        let escaped = t.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let n = arg(Value::Text(format!("%{escaped}%")), &mut args);
        conds.push(format!("(request LIKE ?{n} ESCAPE '\\' OR response LIKE ?{n} ESCAPE '\\')"));
    }
    if let Some(tag) = &q.tag {
        let n = arg(Value::Text(tag.clone()), &mut args);
        conds.push(format!("EXISTS (SELECT 1 FROM json_each(traces.tags) WHERE value = ?{n})"));
    }
    if let Some(s) = q.since {
        let n = arg(Value::Integer(s), &mut args);
        conds.push(format!("created_at >= ?{n}"));
    }
    let clause =
        if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) };
    (clause, args)
}

fn trace_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TraceRow> {
    Ok(TraceRow {
        id: r.get(0)?,
        created_at: r.get(1)?,
        endpoint: r.get(2)?,
        model: r.get(3)?,
        alias: r.get(4)?,
        request: r.get(5)?,
        response: r.get(6)?,
        status: r.get(7)?,
        stream: r.get(8)?,
        latency_ms: r.get(9)?,
        ttft_ms: r.get(10)?,
        prompt_tokens: r.get(11)?,
        completion_tokens: r.get(12)?,
        feedback: r.get(13)?,
        tags: r.get(14)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, status: i64, request: &str, tags: &str) -> TraceRow {
        TraceRow {
            created_at: 100,
            endpoint: "/v1/chat/completions".into(),
            model: model.into(),
            request: request.into(),
            response: "reply".into(),
            status,
            latency_ms: 10,
            tags: tags.into(),
            ..TraceRow::default()
        }
    }

    #[test]
    fn retention_keeps_the_newest_and_never_reuses_ids() {
        let s = Store::open_in_memory().unwrap();
        let ids: Vec<i64> = (0..5)
            .map(|i| s.insert_trace(&row(&format!("m{i}"), 200, "{}", "[]"), 3).unwrap())
            .collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5]);
        let kept: Vec<i64> =
            s.traces(&TraceQuery::default()).unwrap().into_iter().map(|t| t.id).collect();
        assert_eq!(kept, vec![5, 4, 3]);
        assert!(s.trace(2).unwrap().is_none());
        // A deleted id is not handed out again.
        assert_eq!(s.insert_trace(&row("m", 200, "{}", "[]"), 3).unwrap(), 6);
    }

    #[test]
    fn filters_combine() {
        let s = Store::open_in_memory().unwrap();
        s.insert_trace(&row("a", 200, r#"{"q":"100% sure"}"#, r#"["good"]"#), 100).unwrap();
        s.insert_trace(&row("a", 400, r#"{"q":"bad json"}"#, "[]"), 100).unwrap();
        s.insert_trace(&row("b", 200, r#"{"q":"Hello"}"#, r#"["good","x"]"#), 100).unwrap();
        let ids = |q: TraceQuery| -> Vec<i64> {
            s.traces(&q).unwrap().into_iter().map(|t| t.id).collect()
        };
        assert_eq!(ids(TraceQuery { model: Some("a".into()), ..Default::default() }), vec![2, 1]);
        assert_eq!(ids(TraceQuery { ok: Some(false), ..Default::default() }), vec![2]);
        assert_eq!(ids(TraceQuery { ok: Some(true), ..Default::default() }), vec![3, 1]);
        // LIKE's wildcards are literal text here.
        assert_eq!(ids(TraceQuery { text: Some("0% s".into()), ..Default::default() }), vec![1]);
        assert_eq!(
            ids(TraceQuery { text: Some("_".into()), ..Default::default() }),
            Vec::<i64>::new()
        );
        assert_eq!(ids(TraceQuery { text: Some("hello".into()), ..Default::default() }), vec![3]);
        assert_eq!(ids(TraceQuery { tag: Some("good".into()), ..Default::default() }), vec![3, 1]);
        assert_eq!(
            ids(TraceQuery {
                tag: Some("good".into()),
                model: Some("b".into()),
                ..Default::default()
            }),
            vec![3]
        );
        assert_eq!(ids(TraceQuery { limit: Some(1), ..Default::default() }), vec![3]);
        assert_eq!(ids(TraceQuery { since: Some(101), ..Default::default() }), Vec::<i64>::new());
        assert!(s.set_trace_feedback(2, Some(-1), r#"["x"]"#).unwrap());
        assert!(!s.set_trace_feedback(9, None, "[]").unwrap());
        let t = s.trace(2).unwrap().unwrap();
        assert_eq!((t.feedback, t.tags.as_str()), (Some(-1), r#"["x"]"#));
        assert_eq!(s.trace_figures(&TraceQuery::default()).unwrap().len(), 3);
    }
}
