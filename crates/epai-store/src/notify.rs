//! PostgreSQL notifications that servers react to, over one dedicated connection that
//! reconnects by itself.

use std::time::Duration;

use epai_domain::PartnerId;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};
use uuid::Uuid;

use crate::connect::Store;
use crate::queries::named_query;
use crate::queue::JOBS_CHANNEL;
use crate::webhooks::DELIVERIES_CHANNEL;

/// Sent (by a trigger) whenever a partner's API key row changes or disappears.
pub const API_KEY_CHANGED: &str = "epai_api_key_changed";

/// Sent (by a trigger) whenever an insight is created or updated, with `<partner id>:<insight id>`.
pub const INSIGHT_CHANGED: &str = "epai_insight_changed";

/// Something that happened in the database that a server caches or streams.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    ApiKeyChanged(PartnerId),
    InsightChanged {
        partner: PartnerId,
        insight: Uuid,
    },
    /// A job was added to the insight queue: idle workers should look.
    JobsAvailable,
    /// Webhook deliveries were queued: idle delivery workers should look.
    DeliveriesAvailable,
    /// The listening connection was (re)established: anything cached may have changed while
    /// it was down.
    Resubscribed,
    /// The listening connection was lost: changes go unannounced until `Resubscribed`.
    Unsubscribed,
}

impl Store {
    /// Listens for notifications until `sink` is closed. Runs as a background task; connection
    /// failures are announced by `Notification::Unsubscribed` and retried with backoff; each
    /// (re)established subscription by `Notification::Resubscribed`.
    pub async fn listen(&self, sink: mpsc::Sender<Notification>) {
        let mut backoff = Duration::from_millis(200);
        while !sink.is_closed() {
            match self.listen_once(&sink).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "notification listener disconnected");
                    if sink.send(Notification::Unsubscribed).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn listen_once(
        &self,
        sink: &mpsc::Sender<Notification>,
    ) -> Result<(), tokio_postgres::Error> {
        let (client, mut connection) = self.target.app_config().connect(NoTls).await?;
        let (messages_tx, mut messages) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(message)) => {
                        if messages_tx.send(Ok(message)).is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) => {
                        let _ = messages_tx.send(Err(e));
                        return;
                    }
                    None => return,
                }
            }
        });
        client.batch_execute(named_query!("notify/listen")).await?;
        if sink.send(Notification::Resubscribed).await.is_err() {
            return Ok(());
        }
        let outcome = loop {
            tokio::select! {
                message = messages.recv() => match message {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if let Some(notification) = parse(n.channel(), n.payload())
                            && sink.send(notification).await.is_err()
                        {
                            break Ok(());
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Err(e),
                    None => break Ok(()),
                },
                () = sink.closed() => break Ok(()),
            }
        };
        drop(client);
        driver.abort();
        outcome
    }
}

fn parse(channel: &str, payload: &str) -> Option<Notification> {
    match channel {
        API_KEY_CHANGED => payload.parse().ok().map(Notification::ApiKeyChanged),
        INSIGHT_CHANGED => {
            let (partner, insight) = payload.split_once(':')?;
            Some(Notification::InsightChanged {
                partner: partner.parse().ok()?,
                insight: insight.parse().ok()?,
            })
        }
        JOBS_CHANNEL => Some(Notification::JobsAvailable),
        DELIVERIES_CHANNEL => Some(Notification::DeliveriesAvailable),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_become_notifications_and_garbage_is_ignored() {
        let partner = Uuid::new_v4();
        let insight = Uuid::new_v4();
        assert_eq!(
            parse(INSIGHT_CHANGED, &format!("{partner}:{insight}")),
            Some(Notification::InsightChanged {
                partner: PartnerId::new(partner),
                insight
            })
        );
        assert_eq!(
            parse(API_KEY_CHANGED, &partner.to_string()),
            Some(Notification::ApiKeyChanged(PartnerId::new(partner)))
        );
        assert_eq!(parse(JOBS_CHANNEL, ""), Some(Notification::JobsAvailable));
        assert_eq!(
            parse(DELIVERIES_CHANNEL, ""),
            Some(Notification::DeliveriesAvailable)
        );
        assert_eq!(parse(INSIGHT_CHANGED, "not-a-uuid:also-not"), None);
        assert_eq!(parse("elsewhere", ""), None);
    }
}
