//! Dead letters to a Pulsar topic, with the reason in the message properties. The
//! runtime's dead-letter sink is synchronous; letters queue for a publishing task, and
//! the acknowledger waits for [`PulsarDeadLetters::flushed`] before acknowledging the
//! original, so a poison message is never acknowledged before it is in the topic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ::pulsar::producer;
use tokio::sync::{mpsc, Notify};

use super::producer::ManagedProducer;
use super::{
    backoff, PulsarError, PulsarTransport, DEAD_LETTER_ERROR, DEAD_LETTER_ORIGIN,
    DEAD_LETTER_REASON,
};
use crate::telemetry::{DeadLetter, DeadLetterSink};

#[derive(Debug, Default)]
struct Progress {
    submitted: AtomicU64,
    published: AtomicU64,
    notify: Notify,
}

/// Publishes dead letters to the policy's dead-letter topic.
#[derive(Debug, Clone)]
pub struct PulsarDeadLetters {
    tx: mpsc::UnboundedSender<DeadLetter>,
    progress: Arc<Progress>,
}

impl PulsarDeadLetters {
    /// Opens a producer on the dead-letter topic and starts the publishing task.
    ///
    /// # Errors
    /// [`PulsarError::Topic`] when the topic cannot be published to.
    pub async fn open(transport: &PulsarTransport) -> Result<Self, PulsarError> {
        let topic = transport.settings().dead_letter_topic.clone();
        let mut producer = ManagedProducer::open(transport.clone(), &topic).await?;
        let (tx, mut rx) = mpsc::unbounded_channel::<DeadLetter>();
        let progress = Arc::new(Progress::default());
        let p = progress.clone();
        tokio::spawn(async move {
            while let Some(letter) = rx.recv().await {
                let message = producer::Message {
                    payload: letter.payload.clone(),
                    properties: HashMap::from([
                        (
                            DEAD_LETTER_REASON.to_owned(),
                            letter.reason.as_str().to_owned(),
                        ),
                        (DEAD_LETTER_ERROR.to_owned(), letter.error.clone()),
                        (DEAD_LETTER_ORIGIN.to_owned(), letter.topic.clone()),
                    ]),
                    ..producer::Message::default()
                };
                // Never dropped: the original stays unacknowledged until this succeeds.
                let mut attempt = 0;
                while let Err(e) = producer.send(message.clone(), 3).await {
                    tracing::error!(error = %e, "Cannot publish a dead letter; retrying.");
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                p.published.fetch_add(1, Ordering::AcqRel);
                p.notify.notify_waiters();
            }
            producer.close().await;
        });
        Ok(PulsarDeadLetters { tx, progress })
    }

    /// Waits until every letter sent before this call is in the topic.
    pub async fn flushed(&self) {
        let target = self.progress.submitted.load(Ordering::Acquire);
        loop {
            let notified = self.progress.notify.notified();
            if self.progress.published.load(Ordering::Acquire) >= target {
                return;
            }
            notified.await;
        }
    }

    /// Letters published so far.
    pub fn published(&self) -> u64 {
        self.progress.published.load(Ordering::Acquire)
    }
}

impl DeadLetterSink for PulsarDeadLetters {
    fn send(&self, letter: DeadLetter) {
        self.progress.submitted.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(letter).is_err() {
            // The task ends only when every sender is gone; unreachable while `self` lives.
            self.progress.published.fetch_add(1, Ordering::AcqRel);
        }
    }
}
