//! The persisted journal (SQLite): every mutating action is written as an intent with an
//! idempotency key *before* it is sent, and its outcome after. After a crash, an intent
//! without an outcome is an action that may or may not have reached the machine: the executor
//! resumes it by re-reading the real state, never by sending it again. The journal also keeps
//! each node's ladder position, the breaker, and the timeline that fault reports quote.
//!
//! WAL with `synchronous=FULL`: a committed intent survives a power loss, not only a crash.
//! Calls are short and synchronous (one row each); actions are rare, so they run inline.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension as _};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {detail}")]
    Open { path: String, detail: String },
    #[error("journal: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("journal: stored stage for {node} is unreadable: {detail}")]
    Corrupt { node: String, detail: String },
}

mod outbox;
mod records;

pub use outbox::{Delivery, DeliveryRow, DeliveryState, StoredMessage};
use records::Extra;
pub use records::{Before, Breaker, Entry, Intent, Pending, Position};

pub struct Journal {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS actions (
    key TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    action TEXT NOT NULL,
    intent_ms INTEGER NOT NULL,
    before TEXT NOT NULL,
    outcome TEXT,
    detail TEXT,
    done_ms INTEGER
);
CREATE INDEX IF NOT EXISTS actions_node ON actions (node, intent_ms);
CREATE TABLE IF NOT EXISTS positions (
    node TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    episode INTEGER NOT NULL,
    recovered_ms INTEGER,
    findings TEXT NOT NULL,
    sel_seen TEXT
);
CREATE TABLE IF NOT EXISTS breaker (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    reason TEXT NOT NULL,
    since_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS timeline (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    node TEXT NOT NULL,
    what TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS timeline_node ON timeline (node, id);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_node ON messages (node, created_ms);
CREATE TABLE IF NOT EXISTS deliveries (
    message TEXT NOT NULL,
    sink TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_ms INTEGER NOT NULL,
    last_error TEXT,
    done_ms INTEGER,
    PRIMARY KEY (message, sink)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_ms);
";

fn ms(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn sql_ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Journal {
    /// Open (creating) the journal file and its directory.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let err = |detail: String| JournalError::Open {
            path: path.display().to_string(),
            detail,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let conn = Connection::open(path).map_err(|e| err(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| err(e.to_string()))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| err(e.to_string()))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(|e| err(e.to_string()))?;
        conn.execute_batch(SCHEMA).map_err(|e| err(e.to_string()))?;
        migrate(&conn).map_err(|e| err(e.to_string()))?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions);
        // the connection is still usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write the intent for `key` unless it exists; tell which.
    pub fn intent(
        &self,
        key: &str,
        node: &str,
        action: &str,
        before: &Before,
        now_ms: u64,
    ) -> Result<Intent, JournalError> {
        let before = serde_json::to_string(before).map_err(|e| JournalError::Corrupt {
            node: node.to_owned(),
            detail: e.to_string(),
        })?;
        let conn = self.conn();
        let inserted = conn.execute(
            "INSERT OR IGNORE INTO actions (key, node, action, intent_ms, before) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key, node, action, sql_ms(now_ms), before],
        )?;
        if inserted == 1 {
            return Ok(Intent::New);
        }
        let entry = conn.query_row(
            "SELECT key, node, action, intent_ms, before, outcome, detail, done_ms FROM actions WHERE key = ?1",
            params![key],
            row_entry,
        )?;
        Ok(Intent::Seen(entry))
    }

    /// Take over a step another replica journaled (cluster mode): its intent unless known,
    /// and its outcome unless one is known. `true` when something was new.
    pub fn import(
        &self,
        key: &str,
        node: &str,
        action: &str,
        intent_ms: u64,
        before: &Before,
        outcome: Option<(&str, &str, u64)>,
    ) -> Result<bool, JournalError> {
        let before = serde_json::to_string(before).map_err(|e| JournalError::Corrupt {
            node: node.to_owned(),
            detail: e.to_string(),
        })?;
        let conn = self.conn();
        let mut changed = conn.execute(
            "INSERT OR IGNORE INTO actions (key, node, action, intent_ms, before) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key, node, action, sql_ms(intent_ms), before],
        )?;
        if let Some((outcome, detail, done_ms)) = outcome {
            changed += conn.execute(
                "UPDATE actions SET outcome = ?2, detail = ?3, done_ms = ?4 WHERE key = ?1 AND outcome IS NULL",
                params![key, outcome, detail, sql_ms(done_ms)],
            )?;
        }
        Ok(changed > 0)
    }

    /// Record the outcome of `key` (idempotent: the first outcome stays).
    pub fn outcome(
        &self,
        key: &str,
        outcome: &str,
        detail: &str,
        now_ms: u64,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE actions SET outcome = ?2, detail = ?3, done_ms = ?4 WHERE key = ?1 AND outcome IS NULL",
            params![key, outcome, detail, sql_ms(now_ms)],
        )?;
        Ok(())
    }

    /// Forget the outcome of `key` (its intent stays): a step done again on purpose, e.g.
    /// a bootstrap token minted anew because the first one expired before it was used.
    pub fn reopen(&self, key: &str) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE actions SET outcome = NULL, detail = NULL, done_ms = NULL WHERE key = ?1",
            params![key],
        )?;
        Ok(())
    }

    /// The action journaled under `key`, if any.
    pub fn entry(&self, key: &str) -> Result<Option<Entry>, JournalError> {
        Ok(self
            .select("WHERE key = ?1", params![key])?
            .into_iter()
            .next())
    }

    /// Actions started and not finished (after a crash), oldest first.
    pub fn in_flight(&self) -> Result<Vec<Entry>, JournalError> {
        self.select("WHERE outcome IS NULL ORDER BY intent_ms", params![])
    }

    /// How many actions the journal holds.
    pub fn count(&self) -> Result<u64, JournalError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM actions", [], |r| r.get(0))?;
        Ok(ms(n))
    }

    /// Every action, or a node's, oldest first.
    pub fn entries(&self, node: Option<&str>) -> Result<Vec<Entry>, JournalError> {
        match node {
            Some(n) => self.select("WHERE node = ?1 ORDER BY intent_ms, key", params![n]),
            None => self.select("ORDER BY intent_ms, key", params![]),
        }
    }

    fn select(&self, tail: &str, args: impl rusqlite::Params) -> Result<Vec<Entry>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT key, node, action, intent_ms, before, outcome, detail, done_ms FROM actions {tail}"
        ))?;
        let rows = stmt.query_map(args, row_entry)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn save_position(&self, node: &str, p: &Position) -> Result<(), JournalError> {
        let corrupt = |e: serde_json::Error| JournalError::Corrupt {
            node: node.to_owned(),
            detail: e.to_string(),
        };
        let stage = serde_json::to_string(&p.stage).map_err(corrupt)?;
        let findings = serde_json::to_string(&p.findings).map_err(corrupt)?;
        let seen = p
            .sel_seen
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(corrupt)?;
        let extra = serde_json::to_string(&Extra {
            boot_before: p.boot_before.clone(),
            pending: p.pending,
            host_baseline: p.host_baseline.clone(),
        })
        .map_err(corrupt)?;
        self.conn().execute(
            "INSERT INTO positions (node, stage, episode, recovered_ms, findings, sel_seen, extra)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (node) DO UPDATE SET stage = ?2, episode = ?3, recovered_ms = ?4,
             findings = ?5, sel_seen = ?6, extra = ?7",
            params![
                node,
                stage,
                sql_ms(p.episode),
                p.recovered_ms.map(sql_ms),
                findings,
                seen,
                extra
            ],
        )?;
        Ok(())
    }

    pub fn position(&self, node: &str) -> Result<Option<Position>, JournalError> {
        type Row = (
            String,
            i64,
            Option<i64>,
            String,
            Option<String>,
            Option<String>,
        );
        let row: Option<Row> = self
            .conn()
            .query_row(
                "SELECT stage, episode, recovered_ms, findings, sel_seen, extra FROM positions WHERE node = ?1",
                params![node],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()?;
        let Some((stage, episode, recovered, findings, seen, extra)) = row else {
            return Ok(None);
        };
        let corrupt = |e: serde_json::Error| JournalError::Corrupt {
            node: node.to_owned(),
            detail: e.to_string(),
        };
        let extra: Extra = extra
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(corrupt)?
            .unwrap_or_default();
        Ok(Some(Position {
            stage: serde_json::from_str(&stage).map_err(corrupt)?,
            episode: ms(episode),
            recovered_ms: recovered.map(ms),
            findings: serde_json::from_str(&findings).map_err(corrupt)?,
            sel_seen: seen
                .map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(corrupt)?,
            boot_before: extra.boot_before,
            pending: extra.pending,
            host_baseline: extra.host_baseline,
        }))
    }

    pub fn breaker(&self) -> Result<Option<Breaker>, JournalError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT reason, since_ms FROM breaker WHERE id = 1",
                [],
                |r| {
                    Ok(Breaker {
                        reason: r.get(0)?,
                        since_ms: ms(r.get(1)?),
                    })
                },
            )
            .optional()?)
    }

    /// Open the breaker (kept open, with its first reason, until [`Journal::reset_breaker`]).
    pub fn trip_breaker(&self, reason: &str, now_ms: u64) -> Result<bool, JournalError> {
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO breaker (id, reason, since_ms) VALUES (1, ?1, ?2)",
            params![reason, sql_ms(now_ms)],
        )?;
        Ok(n == 1)
    }

    /// Close the breaker; returns what it was.
    pub fn reset_breaker(&self) -> Result<Option<Breaker>, JournalError> {
        let was = self.breaker()?;
        self.conn().execute("DELETE FROM breaker", [])?;
        Ok(was)
    }

    /// Append a line to a node's timeline.
    pub fn note(&self, node: &str, at_ms: u64, what: &str) -> Result<(), JournalError> {
        self.conn().execute(
            "INSERT INTO timeline (at_ms, node, what) VALUES (?1, ?2, ?3)",
            params![sql_ms(at_ms), node, what],
        )?;
        Ok(())
    }

    /// A node's timeline since `since_ms`, oldest first.
    pub fn timeline(&self, node: &str, since_ms: u64) -> Result<Vec<(u64, String)>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT at_ms, what FROM timeline WHERE node = ?1 AND at_ms >= ?2 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![node, sql_ms(since_ms)], |r| {
            Ok((ms(r.get(0)?), r.get(1)?))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// Per node: its newest action, that action's outcome (none while in flight), its time.
pub type LastActions = std::collections::HashMap<String, (String, Option<String>, u64)>;

impl Journal {
    /// Each node's newest action, in one query.
    pub fn last_actions(&self) -> Result<LastActions, JournalError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT node, action, outcome, MAX(intent_ms) FROM actions GROUP BY node")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get(1)?, r.get(2)?, ms(r.get(3)?)),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A node's newest `limit` timeline lines, oldest first.
    pub fn recent_timeline(
        &self,
        node: &str,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT at_ms, what FROM (SELECT id, at_ms, what FROM timeline WHERE node = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(
            params![node, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| Ok((ms(r.get(0)?), r.get(1)?)),
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

/// Columns added since the first schema (a journal written by an older oob opens as is).
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_extra: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('positions') WHERE name = 'extra'")?
        .exists([])?;
    if !has_extra {
        conn.execute_batch("ALTER TABLE positions ADD COLUMN extra TEXT")?;
    }
    Ok(())
}

fn row_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    Ok(Entry {
        key: r.get(0)?,
        node: r.get(1)?,
        action: r.get(2)?,
        intent_ms: ms(r.get(3)?),
        before: {
            let text: String = r.get(4)?;
            serde_json::from_str(&text).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    4,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?
        },
        outcome: r.get(5)?,
        detail: r.get(6)?,
        done_ms: r.get::<_, Option<i64>>(7)?.map(ms),
    })
}

#[cfg(test)]
mod tests;
