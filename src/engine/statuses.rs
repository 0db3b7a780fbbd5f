//! Delivery statuses reach the database through one writer that groups them.
//!
//! A big campaign brings back two or three statuses per message, thousands a second, each from a
//! webhook that waits for it to be stored. Written one by one, every status would be its own
//! transaction and its own commit; here each caller hands its status to the writer and waits,
//! and the writer applies everything waiting with one read, one write and one read of the `/on`
//! rules, on one connection ([`Store::apply_statuses_billed`](crate::store::Store::apply_statuses_billed)), so
//! the cost of the round trips and the commit is shared by the whole batch. Batches grow by
//! themselves under load (statuses pile up while the previous batch commits) and stay single
//! under a trickle, so a lone status waits for nothing.
//!
//! What Meta billed (`pricing`, on every status of a message) goes through the same writer, in
//! the batch its status came in: where that status moves the row forward, the billing is set by
//! the same statement (one row write instead of two: on PostgreSQL each is a new row version);
//! the others are written after the statuses. Never by a second writer at the same time: two
//! writers updating the same recipient rows at once deadlock on PostgreSQL, which breaks the
//! cycle only after `deadlock_timeout` (1 s).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{EngineError, Result};
use crate::channels::StatusUpdate;
use crate::domain::account::Billing;
use crate::store::statuses::{Deferral, StatusChange};
use crate::store::{Backend, Store, StoreError};

/// The most statuses one batch applies.
const MAX_BATCH: usize = 500;

/// Statuses waiting for the writer before callers wait to hand theirs over.
const QUEUE: usize = 8192;

/// A batch that fails is tried this many times in all before its statuses are refused (the
/// webhook then answers an error and the channel redelivers).
const ATTEMPTS: u32 = 3;

type Reply = std::result::Result<Option<StatusChange>, String>;

enum Job {
    Status {
        update: StatusUpdate,
        defer: Option<Deferral>,
        reply: oneshot::Sender<Reply>,
    },
    Billing {
        billing: Billing,
        reply: oneshot::Sender<std::result::Result<(), String>>,
    },
}

/// The handle callers use; the writer task runs until every handle is gone.
pub struct StatusWriter {
    jobs: mpsc::Sender<Job>,
}

impl StatusWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn spawn(store: Store) -> StatusWriter {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(store, queue));
        StatusWriter { jobs }
    }

    /// Applies one status, together with whatever else is waiting; returns what it changed.
    /// `defer` says how a failure the channel asks to retry later puts the recipient back.
    pub async fn apply(
        &self,
        update: StatusUpdate,
        defer: Option<Deferral>,
    ) -> Result<Option<StatusChange>> {
        let (reply, answer) = oneshot::channel();
        let stopped = || EngineError::StatusNotStored("the status writer has stopped".into());
        self.jobs
            .send(Job::Status {
                update,
                defer,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(EngineError::StatusNotStored)
    }

    /// Records what Meta billed for a message, with the batch of statuses waiting.
    pub async fn record_billing(&self, billing: Billing) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let stopped = || EngineError::StatusNotStored("the status writer has stopped".into());
        self.jobs
            .send(Job::Billing { billing, reply })
            .await
            .map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(EngineError::StatusNotStored)
    }
}

async fn run(store: Store, mut queue: mpsc::Receiver<Job>) {
    // SQLite has one connection. On PostgreSQL two batches overlap, so one batch's round trips
    // and its wait for the commit's flush hide the other's; more writers only make each batch
    // smaller, and a small batch costs the database nearly as much as a big one (in the bench,
    // four writers took about a fifth fewer statuses a second than two).
    let writers = match store.backend() {
        Backend::Sqlite => 1,
        Backend::Postgres => 2,
    };
    let free = Arc::new(Semaphore::new(writers));
    while let Some(first) = queue.recv().await {
        // Waiting for a free writer before taking the rest lets the batch grow meanwhile.
        let Ok(permit) = free.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            write(&store, batch).await;
            drop(permit);
        });
    }
}

async fn write(store: &Store, batch: Vec<Job>) {
    let mut updates = Vec::with_capacity(batch.len());
    let mut deferrals = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    let mut billings = Vec::new();
    let mut billing_replies = Vec::new();
    for job in batch {
        match job {
            Job::Status {
                update,
                defer,
                reply,
            } => {
                updates.push(update);
                deferrals.push(defer);
                replies.push(reply);
            }
            Job::Billing { billing, reply } => {
                billings.push(billing);
                billing_replies.push(reply);
            }
        }
    }
    // Billings ride on their rows' status writes where they can; the rest (and all of them
    // when the statuses could not be written) are written on their own.
    let left = write_statuses(store, updates, deferrals, replies, &billings).await;
    if !billings.is_empty() {
        let left: Vec<Billing> = match left {
            Some(left) => left.into_iter().map(|j| billings[j].clone()).collect(),
            None => billings,
        };
        if left.is_empty() {
            for reply in billing_replies {
                let _ = reply.send(Ok(()));
            }
        } else {
            write_billings(store, &left, billing_replies).await;
        }
    }
}

async fn write_billings(
    store: &Store,
    billings: &[Billing],
    replies: Vec<oneshot::Sender<std::result::Result<(), String>>>,
) {
    // Written again at once on failure: the same billing twice changes nothing.
    let mut outcome = store.record_billings(billings).await;
    if outcome.is_err() {
        outcome = store.record_billings(billings).await;
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

/// Writes the statuses (and the billings that can ride on them); returns the indexes of the
/// billings still to write, or `None` when the statuses could not be written at all.
async fn write_statuses(
    store: &Store,
    updates: Vec<StatusUpdate>,
    deferrals: Vec<Option<Deferral>>,
    replies: Vec<oneshot::Sender<Reply>>,
    billings: &[Billing],
) -> Option<Vec<usize>> {
    if updates.is_empty() {
        return Some((0..billings.len()).collect());
    }
    let started = std::time::Instant::now();
    let outcome = apply_with_retries(store, &updates, &deferrals, billings).await;
    tracing::debug!(statuses = updates.len(), elapsed = ?started.elapsed(), "status batch written");
    match outcome {
        Ok((applied, left)) => {
            for (reply, applied) in replies.into_iter().zip(applied) {
                // A caller that gave up waiting no longer needs the answer.
                let _ = reply.send(Ok(applied));
            }
            Some(left)
        }
        Err(error) => {
            let message = crate::error_chain(&error);
            tracing::error!(statuses = updates.len(), error = %message, "delivery statuses not stored");
            for reply in replies {
                let _ = reply.send(Err(message.clone()));
            }
            None
        }
    }
}

async fn apply_with_retries(
    store: &Store,
    updates: &[StatusUpdate],
    deferrals: &[Option<Deferral>],
    billings: &[Billing],
) -> std::result::Result<(Vec<Option<StatusChange>>, Vec<usize>), StoreError> {
    let mut attempt = 1;
    loop {
        match store
            .apply_statuses_billed(updates, deferrals, billings)
            .await
        {
            Ok(changes) => return Ok(changes),
            Err(error) if attempt < ATTEMPTS => {
                // A dropped connection, rows that kept moving: statuses only move forward and a
                // replay changes nothing, so applying the batch again is safe. One pass's writes
                // commit together; a status written by an earlier pass, or before the rules were
                // read, reads as a replay then, and its /on rules are skipped.
                tracing::warn!(attempt, error = %crate::error_chain(&error), "delivery statuses: trying the batch again");
                tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    }
}
