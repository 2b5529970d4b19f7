//! Cross-node wake-ups and job events over LISTEN/NOTIFY.
//!
//! The store queues a [`Note`] after each commit that another node may care about (a job
//! queued, started, making progress, asked to cancel or ended); one task per process sends them in batches with `pg_notify` on a
//! connection with `synchronous_commit = off`. Notifying from inside every job transaction would
//! take PostgreSQL's global notify lock across each commit's WAL flush and serialize all
//! submits; batching after commit costs one cheap statement per batch. A notification is lost
//! when the sender crashes or no listener is connected, so everything that waits on one also
//! polls (runners every 500 ms, event streams every 2 s, long-polls every second).

use std::collections::HashSet;
use std::time::Duration;

use clipia_core::{RequestId, Status};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::mpsc;

/// Notes waiting to be sent; when the sender falls this far behind, new ones are dropped (the
/// listeners' polling covers them).
const PENDING_NOTES_MAX: usize = 16_384;
/// Notes sent by one `pg_notify` statement.
const NOTES_PER_BATCH_MAX: usize = 512;
/// Pause before the listener reconnects after the database went away.
const RECONNECT_BACKOFF_MS: u64 = 500;
/// PostgreSQL's longest identifier (NAMEDATALEN - 1), which a channel name is.
const CHANNEL_BYTES_MAX: usize = 63;

/// Something another node may want to hear about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Note {
    /// A job became claimable in this lane (queued, requeued, or a concurrency slot freed).
    Wake { lane: String },
    /// A job changed status or progress.
    Event { id: RequestId, status: Status, progress: u8 },
    /// Cancellation was asked for a running job: the node running it stops it now rather than
    /// at its next heartbeat.
    Cancel { id: RequestId },
}

/// What a listener hands to the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Heard {
    Note(Note),
    /// The listening connection was lost and is back: notes may have been missed, so every
    /// waiter should re-read the store.
    Resync,
}

/// The channel of one schema, so that deployments (and test runs) sharing a database never
/// hear each other.
pub fn channel_for(schema: &str) -> String {
    let mut name = format!("clipia.{schema}");
    while name.len() > CHANNEL_BYTES_MAX {
        name.pop();
    }
    name
}

fn encode(origin: &str, note: &Note) -> String {
    match note {
        Note::Wake { lane } => format!("{origin}|w|{lane}"),
        Note::Event { id, status, progress } => format!("{origin}|e|{id}|{}|{progress}", status.as_str()),
        Note::Cancel { id } => format!("{origin}|c|{id}"),
    }
}

/// Parses a payload; `None` for our own notes and anything malformed.
fn decode(own_origin: &str, payload: &str) -> Option<Note> {
    let mut parts = payload.split('|');
    let origin = parts.next()?;
    if origin == own_origin {
        return None;
    }
    match parts.next()? {
        "w" => Some(Note::Wake { lane: parts.next()?.to_owned() }),
        "e" => {
            let id = RequestId::parse(parts.next()?)?;
            let status = Status::parse(parts.next()?)?;
            let progress = parts.next()?.parse::<u8>().ok()?.min(100);
            Some(Note::Event { id, status, progress })
        }
        "c" => Some(Note::Cancel { id: RequestId::parse(parts.next()?)? }),
        _ => None,
    }
}

/// The sending half, owned by the store.
#[derive(Clone)]
pub struct Notifier {
    tx: mpsc::Sender<Note>,
}

impl Notifier {
    /// Starts the sender task on `pool` (a small pool whose connections skip the commit flush).
    pub fn spawn(pool: PgPool, channel: String, origin: String) -> Notifier {
        let (tx, mut rx) = mpsc::channel::<Note>(PENDING_NOTES_MAX);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = HashSet::from([first]);
                while batch.len() < NOTES_PER_BATCH_MAX {
                    match rx.try_recv() {
                        Ok(note) => {
                            batch.insert(note);
                        }
                        Err(_) => break,
                    }
                }
                let payloads: Vec<String> = batch.iter().map(|n| encode(&origin, n)).collect();
                let sent = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                    .bind(&channel)
                    .bind(&payloads)
                    .execute(&pool)
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, notes = payloads.len(), "could not notify other nodes; they will poll");
                }
            }
        });
        Notifier { tx }
    }

    pub fn send(&self, note: Note) {
        let _ = self.tx.try_send(note);
    }
}

/// Listens on `channel` until the receiver is dropped, reconnecting whenever the connection is
/// lost; each reconnect is reported as [`Heard::Resync`].
pub fn listen(pool: PgPool, channel: String, origin: String) -> mpsc::Receiver<Heard> {
    let (tx, rx) = mpsc::channel::<Heard>(PENDING_NOTES_MAX);
    tokio::spawn(async move {
        let mut connected_before = false;
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot connect the notification listener; retrying");
                    tokio::time::sleep(Duration::from_millis(RECONNECT_BACKOFF_MS)).await;
                    if tx.is_closed() {
                        return;
                    }
                    continue;
                }
            };
            if let Err(e) = listener.listen(&channel).await {
                tracing::warn!(error = %e, "LISTEN failed; retrying");
                tokio::time::sleep(Duration::from_millis(RECONNECT_BACKOFF_MS)).await;
                continue;
            }
            if connected_before && tx.send(Heard::Resync).await.is_err() {
                return;
            }
            connected_before = true;
            loop {
                tokio::select! {
                    got = listener.try_recv() => match got {
                        Ok(Some(n)) => {
                            if let Some(note) = decode(&origin, n.payload()) {
                                if tx.send(Heard::Note(note)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Ok(None) => {
                            // The connection dropped; sqlx reconnects on the next call, and
                            // whatever was sent meanwhile is gone.
                            tracing::warn!("notification listener reconnected; resynchronizing");
                            if tx.send(Heard::Resync).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "notification listener failed; reconnecting");
                            tokio::time::sleep(Duration::from_millis(RECONNECT_BACKOFF_MS)).await;
                            break;
                        }
                    },
                    _ = tx.closed() => return,
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_and_own_notes_are_ignored() {
        let id = RequestId::new();
        let note = Note::Event { id, status: Status::Completed, progress: 100 };
        assert_eq!(decode("b", &encode("a", &note)), Some(note.clone()));
        assert_eq!(decode("a", &encode("a", &note)), None);
        let wake = Note::Wake { lane: "builtin".into() };
        assert_eq!(decode("b", &encode("a", &wake)), Some(wake));
        let cancel = Note::Cancel { id };
        assert_eq!(decode("b", &encode("a", &cancel)), Some(cancel));
        assert_eq!(decode("b", "a|e|not-a-uuid|COMPLETED|1"), None);
        assert_eq!(decode("b", "garbage"), None);
        assert!(channel_for(&"x".repeat(100)).len() <= CHANNEL_BYTES_MAX);
    }
}
