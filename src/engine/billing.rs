//! What Meta billed reaches the database through one writer that groups it, as statuses do
//! ([`super::statuses`]): every status webhook of a big campaign carries `pricing`, thousands a
//! second, and one statement per status would halve the statuses herald takes in. Each caller
//! hands its billing over and waits; the writer records whatever is waiting in one statement.

use tokio::sync::{mpsc, oneshot};

use super::{EngineError, Result};
use crate::domain::account::Billing;
use crate::store::Store;

/// The most billings one statement records.
const MAX_BATCH: usize = 500;
/// Billings waiting for the writer before callers wait to hand theirs over.
const QUEUE: usize = 8192;

struct Job {
    billing: Billing,
    reply: oneshot::Sender<std::result::Result<(), String>>,
}

/// The handle callers use; the writer task runs until every handle is gone.
pub struct BillingWriter {
    jobs: mpsc::Sender<Job>,
}

impl BillingWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn spawn(store: Store) -> BillingWriter {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, queue));
        BillingWriter { jobs }
    }

    /// Records one billing, together with whatever else is waiting.
    pub async fn record(&self, billing: Billing) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let stopped = || EngineError::StatusNotStored("the billing writer has stopped".into());
        self.jobs
            .send(Job { billing, reply })
            .await
            .map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(EngineError::StatusNotStored)
    }
}

async fn run(store: Store, mut queue: mpsc::Receiver<Job>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (billings, replies): (Vec<Billing>, Vec<_>) =
            batch.into_iter().map(|j| (j.billing, j.reply)).unzip();
        // Written again at once on failure: the same billing twice changes nothing.
        let mut outcome = store.record_billings(&billings).await;
        if outcome.is_err() {
            outcome = store.record_billings(&billings).await;
        }
        let outcome = outcome.map(|_| ()).map_err(|error| {
            let message = crate::error_chain(&error);
            tracing::error!(billings = billings.len(), error = %message, "billing not stored");
            message
        });
        for reply in replies {
            // A caller that gave up waiting no longer needs the answer.
            let _ = reply.send(outcome.clone());
        }
    }
}
