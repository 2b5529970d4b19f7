//! Multi-node glue: hands the notifications other nodes send through PostgreSQL to this node's
//! App — wake-ups to idle runners, job events to long-polls and event streams, cancellations to
//! the runner holding the job.

use clipia_service::{App, JobEvent, LANE_BUILTIN, LANE_SANDBOX};
use clipia_store_postgres::{Heard, Note, PgStore};
use tokio::task::JoinHandle;

/// Starts the listener; it runs until the process ends (reconnecting by itself).
pub fn spawn_listener(store: &PgStore, app: App) -> JoinHandle<()> {
    let mut heard = store.listen();
    tokio::spawn(async move {
        while let Some(h) = heard.recv().await {
            match h {
                Heard::Note(Note::Wake { lane }) => app.wake_lane(&lane),
                Heard::Note(Note::Event { id, status, progress }) => app.deliver(JobEvent { id, status, progress }),
                Heard::Note(Note::Cancel { id }) => app.signal_cancel(&id),
                // Notes may have been missed while the connection was down: runners look for
                // work now; long-polls and event streams re-read the store on their own timers.
                Heard::Resync => {
                    app.wake_lane(LANE_BUILTIN);
                    app.wake_lane(LANE_SANDBOX);
                }
            }
        }
    })
}
