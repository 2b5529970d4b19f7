//! `GET /v1/requests/{id}/events` [ext]: Server-Sent Events for one request — a `status` event
//! per status or progress change, a `log` event per log line, keep-alive comments every 15 s,
//! and the stream ends after the terminal `status` event.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use clipia_service::requests::RequestView;
use clipia_service::{App, Caller};
use clipia_core::RequestId;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::Authed;
use crate::wire::{LogEntry, StatusResponse};
use crate::AppState;

/// Keep-alive comment interval (SPEC §4).
const KEEP_ALIVE_S: u64 = 15;
/// Even without a local event, the stream re-reads the store this often (a request may run on
/// another node).
const RECHECK_MS: u64 = 2_000;
/// Events buffered for a slow client before the producer waits.
const CLIENT_BUFFER_EVENTS: usize = 64;

/// Stream a request's progress as Server-Sent Events.
#[utoipa::path(get, path = "/v1/requests/{id}/events", tag = "queue",
    params(("id" = String, Path, description = "The request_id")),
    responses((status = 200, content_type = "text/event-stream", description = "`status` and `log` events"),
              (status = 404, body = ErrorEnvelope)))]
pub async fn events(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let app = state.app.clone();
    let id = app.parse_request_id(&id)?;
    let first = app.request(&caller, &id, true).await?; // 404 before the stream starts
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER_EVENTS);
    tokio::spawn(produce(app, caller, id, first, tx));
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(KEEP_ALIVE_S))))
}

fn status_event(view: &RequestView) -> Event {
    let mut body = StatusResponse::from(view);
    body.logs.clear();
    Event::default().event("status").json_data(body).unwrap_or_default()
}

async fn produce(app: App, caller: Caller, id: RequestId, first: RequestView, tx: mpsc::Sender<Result<Event, Infallible>>) {
    let mut events = app.subscribe();
    let mut view = first;
    let mut sent_logs = 0usize;
    let mut last: Option<(String, u8, Option<u64>)> = None;
    loop {
        for line in &view.logs[sent_logs.min(view.logs.len())..] {
            let event = Event::default().event("log").json_data(LogEntry::from(line)).unwrap_or_default();
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        sent_logs = view.logs.len();
        let now = (view.job.status.as_str().to_owned(), view.job.progress, view.queue_position);
        if last.as_ref() != Some(&now) {
            if tx.send(Ok(status_event(&view))).await.is_err() {
                return;
            }
            last = Some(now);
        }
        if view.job.status.is_terminal() {
            return;
        }
        let progress_hint = loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Ok(ev) if ev.id == id => break Some(ev.progress),
                    Ok(_) => continue,
                    Err(_) => break None,
                },
                _ = tokio::time::sleep(Duration::from_millis(RECHECK_MS)) => break None,
                _ = tx.closed() => return,
            }
        };
        view = match app.request(&caller, &id, true).await {
            Ok(mut v) => {
                // The event carries progress fresher than the last heartbeat wrote.
                if let Some(p) = progress_hint.filter(|_| v.job.status == clipia_core::Status::InProgress) {
                    v.job.progress = v.job.progress.max(p);
                }
                v
            }
            Err(_) => return,
        };
    }
}
