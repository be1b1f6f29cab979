//! The outbox: messages for the machine room (fault reports, follow-ups), each written once
//! with one delivery per sink, in the same transaction. A delivery is pending until a sink
//! took it, then delivered; retried with backoff; expired when it could not be delivered in
//! time. The body is opaque here (the report module's JSON).

use rusqlite::{params, OptionalExtension as _};

use super::{ms, sql_ms, Journal, JournalError};

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: String,
    pub node: String,
    pub kind: String,
    pub created_ms: u64,
    pub body: String,
}

/// Where one delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Expired,
}

impl DeliveryState {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Expired => "expired",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "delivered" => Self::Delivered,
            "expired" => Self::Expired,
            _ => Self::Pending,
        }
    }
}

/// A delivery that is due: the message and the sink it goes to.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message: StoredMessage,
    pub sink: String,
    pub attempts: u32,
}

/// One line of `oob report status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeliveryRow {
    pub message: String,
    pub node: String,
    pub kind: String,
    pub created_ms: u64,
    pub sink: String,
    pub state: &'static str,
    pub attempts: u32,
    /// Pending: the next try; delivered or expired: when.
    pub at_ms: u64,
    pub last_error: Option<String>,
}

impl Journal {
    /// Write a message and one pending delivery per sink, unless a message with this id
    /// exists (then nothing changes: a message is written once, also across restarts).
    /// `true` when it was new.
    pub fn enqueue(&self, m: &StoredMessage, sinks: &[&str]) -> Result<bool, JournalError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO messages (id, node, kind, created_ms, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![m.id, m.node, m.kind, sql_ms(m.created_ms), m.body],
        )?;
        if inserted == 1 {
            for sink in sinks {
                tx.execute(
                    "INSERT OR IGNORE INTO deliveries (message, sink, state, next_ms) VALUES (?1, ?2, 'pending', ?3)",
                    params![m.id, sink, sql_ms(m.created_ms)],
                )?;
            }
        }
        tx.commit()?;
        Ok(inserted == 1)
    }

    /// Whether a message with this id was ever written.
    pub fn has_message(&self, id: &str) -> Result<bool, JournalError> {
        Ok(self
            .conn()
            .prepare("SELECT 1 FROM messages WHERE id = ?1")?
            .exists(params![id])?)
    }

    /// The node's newest message of `kind`, if any.
    pub fn last_message(
        &self,
        node: &str,
        kind: &str,
    ) -> Result<Option<StoredMessage>, JournalError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, node, kind, created_ms, body FROM messages WHERE node = ?1 AND kind = ?2 ORDER BY created_ms DESC, id DESC LIMIT 1",
                params![node, kind],
                row_message,
            )
            .optional()?)
    }

    /// Pending deliveries whose time has come, oldest first, at most `limit`.
    pub fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<Delivery>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT m.id, m.node, m.kind, m.created_ms, m.body, d.sink, d.attempts \
             FROM deliveries d JOIN messages m ON m.id = d.message \
             WHERE d.state = 'pending' AND d.next_ms <= ?1 ORDER BY d.next_ms, m.id, d.sink LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            params![sql_ms(now_ms), i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| {
                Ok(Delivery {
                    message: row_message(r)?,
                    sink: r.get(5)?,
                    attempts: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(u32::MAX),
                })
            },
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Take a due delivery for one attempt (until `until_ms`): `false` when another process
    /// (`oob report deliver` next to the service) took it first or it is no longer due.
    pub fn claim(
        &self,
        id: &str,
        sink: &str,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<bool, JournalError> {
        let n = self.conn().execute(
            "UPDATE deliveries SET next_ms = ?4 WHERE message = ?1 AND sink = ?2 AND state = 'pending' AND next_ms <= ?3",
            params![id, sink, sql_ms(now_ms), sql_ms(until_ms)],
        )?;
        Ok(n == 1)
    }

    /// The sink took the message (only a pending delivery changes).
    pub fn delivered(&self, id: &str, sink: &str, now_ms: u64) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, done_ms = ?3, last_error = NULL \
             WHERE message = ?1 AND sink = ?2 AND state = 'pending'",
            params![id, sink, sql_ms(now_ms)],
        )?;
        Ok(())
    }

    /// A failed attempt: try again at `next_ms`.
    pub fn retry(
        &self,
        id: &str,
        sink: &str,
        error: &str,
        next_ms: u64,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE deliveries SET attempts = attempts + 1, next_ms = ?3, last_error = ?4 \
             WHERE message = ?1 AND sink = ?2 AND state = 'pending'",
            params![id, sink, sql_ms(next_ms), error],
        )?;
        Ok(())
    }

    /// Given up: too old to be worth sending.
    pub fn expire(
        &self,
        id: &str,
        sink: &str,
        error: &str,
        now_ms: u64,
    ) -> Result<(), JournalError> {
        self.conn().execute(
            "UPDATE deliveries SET state = 'expired', done_ms = ?3, last_error = ?4 \
             WHERE message = ?1 AND sink = ?2 AND state = 'pending'",
            params![id, sink, sql_ms(now_ms), error],
        )?;
        Ok(())
    }

    /// Deliveries still pending (the `oob_reports_pending` gauge).
    pub fn pending_deliveries(&self) -> Result<u64, JournalError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?;
        Ok(ms(n))
    }

    /// Every delivery (or a node's), newest message first.
    pub fn deliveries(&self, node: Option<&str>) -> Result<Vec<DeliveryRow>, JournalError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT m.id, m.node, m.kind, m.created_ms, d.sink, d.state, d.attempts, d.next_ms, d.done_ms, d.last_error \
             FROM deliveries d JOIN messages m ON m.id = d.message \
             WHERE ?1 IS NULL OR m.node = ?1 ORDER BY m.created_ms DESC, m.id, d.sink",
        )?;
        let rows = stmt.query_map(params![node], |r| {
            let state = DeliveryState::parse(&r.get::<_, String>(5)?);
            let next: i64 = r.get(7)?;
            let done: Option<i64> = r.get(8)?;
            Ok(DeliveryRow {
                message: r.get(0)?,
                node: r.get(1)?,
                kind: r.get(2)?,
                created_ms: ms(r.get(3)?),
                sink: r.get(4)?,
                state: state.name(),
                attempts: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(u32::MAX),
                at_ms: ms(done.unwrap_or(next)),
                last_error: r.get(9)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

fn row_message(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        id: r.get(0)?,
        node: r.get(1)?,
        kind: r.get(2)?,
        created_ms: ms(r.get(3)?),
        body: r.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, node: &str, at: u64) -> StoredMessage {
        StoredMessage {
            id: id.into(),
            node: node.into(),
            kind: "report".into(),
            created_ms: at,
            body: "{}".into(),
        }
    }

    #[test]
    fn a_message_is_written_once_with_one_delivery_per_sink() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        assert!(j
            .enqueue(&msg("n1/1/report", "n1", 100), &["hook", "mail"])
            .unwrap());
        // Again (a restart writing the same report): nothing changes, no third delivery.
        assert!(!j
            .enqueue(&msg("n1/1/report", "n1", 200), &["hook", "mail", "x"])
            .unwrap());
        assert_eq!(j.pending_deliveries().unwrap(), 2);
        assert!(j.due(99, 10).unwrap().is_empty());
        let due = j.due(100, 10).unwrap();
        assert_eq!(
            due.iter().map(|d| d.sink.as_str()).collect::<Vec<_>>(),
            ["hook", "mail"]
        );
        assert_eq!(due[0].message.created_ms, 100);
        j.retry("n1/1/report", "hook", "connection refused", 500)
            .unwrap();
        j.delivered("n1/1/report", "mail", 150).unwrap();
        // Delivered once: a second "delivered" or a late retry changes nothing.
        j.delivered("n1/1/report", "mail", 170).unwrap();
        j.retry("n1/1/report", "mail", "late", 900).unwrap();
        assert!(j.due(499, 10).unwrap().is_empty());
        assert_eq!(j.due(500, 10).unwrap()[0].attempts, 1);
        let rows = j.deliveries(Some("n1")).unwrap();
        let hook = rows.iter().find(|r| r.sink == "hook").unwrap();
        assert_eq!((hook.state, hook.attempts, hook.at_ms), ("pending", 1, 500));
        assert_eq!(hook.last_error.as_deref(), Some("connection refused"));
        let mail = rows.iter().find(|r| r.sink == "mail").unwrap();
        assert_eq!(
            (mail.state, mail.attempts, mail.at_ms),
            ("delivered", 1, 150)
        );
        j.expire("n1/1/report", "hook", "expired", 600).unwrap();
        assert_eq!(j.pending_deliveries().unwrap(), 0);
        assert!(j.due(u64::MAX / 4, 10).unwrap().is_empty());
        assert!(j.deliveries(Some("n2")).unwrap().is_empty());
        assert!(j.has_message("n1/1/report").unwrap());
    }

    #[test]
    fn the_newest_message_of_a_kind_is_found_per_node() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        j.enqueue(&msg("n1/1/report", "n1", 100), &["a"]).unwrap();
        j.enqueue(&msg("n1/2/report", "n1", 300), &["a"]).unwrap();
        j.enqueue(&msg("n2/1/report", "n2", 400), &["a"]).unwrap();
        assert_eq!(
            j.last_message("n1", "report").unwrap().unwrap().id,
            "n1/2/report"
        );
        assert!(j.last_message("n3", "report").unwrap().is_none());
        // Survives a reopen (the point of an outbox).
        drop(j);
        let j = Journal::open(&dir.path().join("j.sqlite")).unwrap();
        assert_eq!(j.pending_deliveries().unwrap(), 3);
    }
}
