//! Live insights: `GET /v1/insights/stream` sends each new or updated insight of the caller's
//! partner as a Server-Sent Event, as soon as a worker (in any process) writes it.
//!
//! The database announces every insight change (`epai_insight_changed`, from a trigger); the
//! server's one notification listener fans it out in-process over a broadcast channel, and each
//! stream reads the insight it is told about through the caller's own tenant handle, so row-level
//! security and the embed token's scope decide what is sent. A reconnecting client sends
//! `Last-Event-ID` and first receives what changed since that insight last changed.

use std::collections::VecDeque;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::Utc;
use epai_domain::PartnerId;
use epai_store::InsightRecord;
use futures_util::Stream;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use uuid::Uuid;

use crate::AppState;
use crate::caller::InsightReader;
use crate::error::{ApiError, Problem};
use crate::reads::in_scope;

/// How long a new stream waits for the notification listener after a (re)start.
const LISTENER_WAIT: Duration = Duration::from_secs(5);
/// Most insights sent when catching up after a reconnect or a lag.
const CATCH_UP_LIMIT: i64 = 1000;
/// Changes buffered per stream before a slow one lags (and catches up from the database).
const FEED_CAPACITY: usize = 1024;

/// What every stream of this server hears about.
#[derive(Clone, Debug)]
pub enum FeedEvent {
    Changed {
        partner: PartnerId,
        insight: Uuid,
    },
    /// Notifications may have been missed (the listener reconnected): catch up from the database.
    Resync,
}

/// The in-process fan-out of insight changes, and whether the database listener is up.
#[derive(Clone)]
pub struct InsightFeed {
    changes: broadcast::Sender<FeedEvent>,
    listening: watch::Receiver<bool>,
}

/// The listener's side of the feed.
pub struct FeedPublisher {
    changes: broadcast::Sender<FeedEvent>,
    listening: watch::Sender<bool>,
}

impl InsightFeed {
    pub fn new() -> (Self, FeedPublisher) {
        let (changes, _) = broadcast::channel(FEED_CAPACITY);
        let (listening_tx, listening) = watch::channel(false);
        (
            Self {
                changes: changes.clone(),
                listening,
            },
            FeedPublisher {
                changes,
                listening: listening_tx,
            },
        )
    }
}

impl FeedPublisher {
    pub fn changed(&self, partner: PartnerId, insight: Uuid) {
        // No stream open: nobody to tell.
        let _ = self.changes.send(FeedEvent::Changed { partner, insight });
    }

    /// The listener (re)subscribed: streams may open, and open ones catch up.
    pub fn resubscribed(&self) {
        self.listening.send_replace(true);
        let _ = self.changes.send(FeedEvent::Resync);
    }
}

/// New and updated insights of the caller's partner as Server-Sent Events: event `insight`, id
/// the insight's id, data the insight as `GET /v1/insights/{id}` returns it. A comment line
/// every 15 s keeps the connection open. With `Last-Event-ID`, insights changed since that one
/// last changed come first. Embed tokens see only their scope, until they expire.
#[utoipa::path(get, path = "/v1/insights/stream", tag = "insights",
    params(("Last-Event-ID" = Option<String>, Header,
        description = "Id of the last insight received, to resume after a disconnect")),
    security(("apikey" = []), ("session" = [])),
    responses(
        (status = 200, description = "An endless `text/event-stream` of `insight` events",
            content_type = "text/event-stream", body = InsightRecord),
        (status = "4XX", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json",
         description = "Live updates are not available right now")))]
pub async fn insights(
    State(state): State<AppState>,
    caller: InsightReader,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, axum::Error>>>, ApiError> {
    let partner = match caller.partner_id {
        Some(partner) => partner,
        None => {
            state
                .store
                .as_user(caller.user_id, async |t| t.partner().await)
                .await?
                .id
        }
    };
    let mut listening = state.insights.listening.clone();
    match tokio::time::timeout(LISTENER_WAIT, listening.wait_for(|up| *up)).await {
        Ok(Ok(_)) => {}
        _ => {
            return Err(ApiError::unavailable(
                "live insight updates are starting; retry shortly",
            ));
        }
    }
    // Subscribed before catching up, so nothing written in between is missed.
    let changes = state.insights.changes.subscribe();
    let resume_from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v.trim()).ok());
    let expires = caller.embed.as_ref().map(|embed| {
        let left = (embed.exp - Utc::now().timestamp()).max(0);
        Instant::now() + Duration::from_secs(left.unsigned_abs())
    });
    let mut subscription = Subscription {
        state,
        caller,
        partner,
        changes,
        pending: VecDeque::new(),
        last_sent: None,
        expires,
    };
    if let Some(since) = resume_from {
        subscription.catch_up(since).await;
    }
    let heartbeat = subscription.state.settings.stream_heartbeat;
    let events = futures_util::stream::unfold(subscription, Subscription::next_event);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat)))
}

struct Subscription {
    state: AppState,
    caller: InsightReader,
    partner: PartnerId,
    changes: broadcast::Receiver<FeedEvent>,
    pending: VecDeque<InsightRecord>,
    last_sent: Option<Uuid>,
    /// When the embed token runs out; the stream ends then.
    expires: Option<Instant>,
}

impl Subscription {
    async fn next_event(mut self) -> Option<(Result<Event, axum::Error>, Self)> {
        loop {
            if let Some(insight) = self.pending.pop_front() {
                self.last_sent = Some(insight.id);
                let event = Event::default()
                    .event("insight")
                    .id(insight.id.to_string())
                    .json_data(&insight);
                return Some((event, self));
            }
            let expired = async {
                match self.expires {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let change = tokio::select! {
                change = self.changes.recv() => change,
                () = expired => return None,
            };
            match change {
                Ok(FeedEvent::Changed { partner, insight }) if partner == self.partner => {
                    self.load(insight).await;
                }
                Ok(FeedEvent::Changed { .. }) => {}
                Ok(FeedEvent::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(last) = self.last_sent {
                        self.catch_up(last).await;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Queues `insight` when the caller may see it.
    async fn load(&mut self, insight: Uuid) {
        let user = self.caller.user_id;
        match self
            .state
            .store
            .as_user(user, async |t| t.insight(insight).await)
            .await
        {
            Ok(Some(record)) if in_scope(&self.caller, &record) => self.pending.push_back(record),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, %insight, "cannot read a changed insight"),
        }
    }

    /// Queues what changed since `since` last changed (visible to the caller, in scope).
    async fn catch_up(&mut self, since: Uuid) {
        let user = self.caller.user_id;
        match self
            .state
            .store
            .as_user(user, async |t| {
                t.insights_changed_since(since, CATCH_UP_LIMIT).await
            })
            .await
        {
            Ok(records) => self.pending.extend(
                records
                    .into_iter()
                    .filter(|record| in_scope(&self.caller, record)),
            ),
            Err(e) => tracing::warn!(error = %e, "cannot catch up on insights"),
        }
    }
}
