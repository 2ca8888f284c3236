//! Message bodies: the MIME from `$value`, stored once and served forever (ARCHITECTURE
//! invariant 2). Fetched in the background newest first — small messages twenty to a
//! `$batch`, large ones on their own so a batch answer never holds many megabytes — and on
//! demand when a client asks for one that is not here yet.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};

use super::{MailboxSync, SyncError};
use crate::graph::batch::{BatchRequest, MAX_BATCH};
use crate::graph::GraphClient;
use crate::mailstore::messages::{self as stored, MissingBody};
use crate::mailstore::{BodyOrigin, StoreError};

/// Missing bodies read from the store at a time.
const LIST_AHEAD: usize = 1000;
/// Messages Exchange estimates above this are fetched alone, not in a batch.
const BATCH_ITEM_MAX: i64 = 1024 * 1024;
/// Estimated bytes per batch, so a batch answer stays a few megabytes.
const BATCH_BYTES_MAX: i64 = 4 * 1024 * 1024;
/// Fetches under way at once. A `$batch` takes all four of the mailbox's request slots while
/// Graph works on it, so one is on the wire while the next waits for the slots and budget and
/// the last one's bodies are being stored; the limit of four requests in flight is the
/// client's (`GraphClient`), not this.
const JOBS_IN_FLIGHT: usize = 3;
/// How often at most clients are told about new bodies while the fetcher runs.
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);

impl MailboxSync {
    /// The message's bytes: from the store, or fetched from Graph and stored first, so that
    /// the size and structure a client sees are always those of the bytes served.
    pub async fn body(&self, graph_id: &str) -> Result<Vec<u8>, SyncError> {
        let account = self.account_id;
        let id = graph_id.to_string();
        if let Some(raw) = self
            .store
            .call(move |c| stored::get_body(c, account, &id))
            .await?
        {
            return Ok(raw);
        }
        let raw = match self.graph.mime(graph_id).await {
            Ok(raw) => raw,
            Err(e) if e.is_not_found() => return Err(SyncError::Gone),
            Err(e) => return Err(self.noted(e.into()).await),
        };
        let id = graph_id.to_string();
        // Another fetch may have stored it meanwhile; the first stored copy wins.
        self.store
            .call(move |c| {
                store_graph_body(c, account, &id, &raw)?;
                stored::get_body(c, account, &id)?
                    .ok_or_else(|| StoreError::NotFound(format!("body of {id}")))
            })
            .await
            .map_err(SyncError::from)
    }

    /// Fetches bodies not stored yet, newest first; returns how many were stored.
    ///
    /// A continuous pipeline rather than rounds: up to [`JOBS_IN_FLIGHT`] fetches (a `$batch`
    /// of small messages, or one large message) run at once, and each one that ends makes
    /// room for the next at once, so the request budget is spent as fast as it frees and the
    /// pipe never drains while the slowest fetch of a round finishes. The list of missing
    /// bodies is read ahead [`LIST_AHEAD`] at a time. A message whose body could not be
    /// fetched is not asked for again in this call (the next poll pass tries again).
    pub async fn fetch_missing_bodies(&self) -> Result<usize, SyncError> {
        let mut queue: VecDeque<Job> = VecDeque::new();
        // Ids handed to a fetch in this call and not stored (yet): in flight, or failed.
        let mut taken: HashSet<String> = HashSet::new();
        let mut listed_all = false;
        let mut running = FuturesUnordered::new();
        let mut fetched = 0;
        let mut failure: Option<SyncError> = None;
        let mut last_announce = Instant::now();
        loop {
            while failure.is_none() && running.len() < JOBS_IN_FLIGHT {
                if queue.is_empty() && !listed_all {
                    let more = self.list_missing(&taken).await?;
                    listed_all = more.is_empty();
                    queue.extend(plan(more));
                }
                let Some(job) = queue.pop_front() else { break };
                taken.extend(job.ids().iter().cloned());
                running.push(self.run_job(job));
            }
            let Some((ids, result)) = running.next().await else {
                break;
            };
            match result {
                Ok(stored) => {
                    fetched += stored.len();
                    for id in stored {
                        taken.remove(&id);
                    }
                }
                // Deleted meanwhile: the next delta removes it.
                Err(SyncError::Gone) => {}
                // The fetches on the wire finish and are kept; nothing new starts.
                Err(e) => {
                    tracing::debug!(count = ids.len(), error = %e, "body fetch failed");
                    failure.get_or_insert(e);
                }
            }
            // Clients see new bodies (RFC822.SIZE, BODYSTRUCTURE) without waiting for the
            // end, without being woken for every single fetch.
            if last_announce.elapsed() >= ANNOUNCE_EVERY {
                self.announce();
                last_announce = Instant::now();
            }
        }
        if fetched > 0 {
            self.announce();
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(fetched),
        }
    }

    /// The next missing bodies, newest first, leaving out those this call already took.
    async fn list_missing(&self, taken: &HashSet<String>) -> Result<Vec<MissingBody>, SyncError> {
        let account = self.account_id;
        // Taken ones are still missing in the store; ask for enough to skip past them.
        let limit = LIST_AHEAD + taken.len();
        let listed = self
            .store
            .call(move |c| stored::missing_bodies(c, account, limit))
            .await?;
        Ok(listed
            .into_iter()
            .filter(|m| !taken.contains(&m.graph_id))
            .take(LIST_AHEAD)
            .collect())
    }

    /// Runs one fetch; returns its ids and the ids it stored.
    async fn run_job(&self, job: Job) -> (Vec<String>, Result<Vec<String>, SyncError>) {
        match job {
            Job::Batch(ids) => {
                let result = self.fetch_batch(ids.clone()).await;
                (ids, result)
            }
            Job::Alone(id) => {
                let result = self.body(&id).await.map(|_| vec![id.clone()]);
                (vec![id], result)
            }
        }
    }

    /// One `$batch` of `$value` requests; the bodies that came back are stored in one
    /// transaction, and their ids returned. Messages Graph no longer has are skipped (the next
    /// delta removes them).
    async fn fetch_batch(&self, ids: Vec<String>) -> Result<Vec<String>, SyncError> {
        let requests: Vec<BatchRequest> = ids
            .iter()
            .map(|id| BatchRequest::get(GraphClient::mime_path(id)))
            .collect();
        let results = match self.graph.batch(&requests).await {
            Ok(results) => results,
            Err(e) => return Err(self.noted(e.into()).await),
        };
        let mut bodies = Vec::with_capacity(ids.len());
        let mut failure = None;
        for (id, result) in ids.into_iter().zip(results) {
            match result {
                Ok(raw) => bodies.push((id, raw)),
                Err(e) if e.is_not_found() => {}
                Err(e) => failure = Some(e),
            }
        }
        let account = self.account_id;
        let stored_ids = self
            .store
            .call(move |c| {
                let tx = c.transaction()?;
                for (id, raw) in &bodies {
                    store_graph_body(&tx, account, id, raw)?;
                }
                tx.commit()?;
                Ok(bodies.into_iter().map(|(id, _)| id).collect::<Vec<_>>())
            })
            .await?;
        match failure {
            // What was stored stays stored; the rest is tried again in the next pass.
            Some(e) if stored_ids.is_empty() => Err(self.noted(e.into()).await),
            _ => Ok(stored_ids),
        }
    }
}

/// Stores Graph's MIME for a message unless a body is already stored. IMAP requires CRLF
/// line ends; the stored bytes are the served bytes, so they are fixed once, here.
fn store_graph_body(
    conn: &rusqlite::Connection,
    account: i64,
    graph_id: &str,
    raw: &[u8],
) -> Result<(), StoreError> {
    let raw = crate::rfc822::normalize_line_endings(raw);
    stored::put_body(conn, account, graph_id, &raw, BodyOrigin::Graph)
}

/// One fetch of the background fetcher.
#[derive(Debug, PartialEq)]
enum Job {
    /// Small messages, one `$batch`.
    Batch(Vec<String>),
    /// A large message (or one of unknown size), fetched on its own.
    Alone(String),
}

impl Job {
    fn ids(&self) -> &[String] {
        match self {
            Job::Batch(ids) => ids,
            Job::Alone(id) => std::slice::from_ref(id),
        }
    }
}

/// Splits missing bodies into batches of small messages and messages fetched alone (large,
/// or of unknown size), keeping the newest-first order as far as batching allows.
fn plan(missing: Vec<MissingBody>) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut current_bytes = 0;
    for body in missing {
        match body.size_estimate {
            Some(size) if size <= BATCH_ITEM_MAX => {
                if current.len() == MAX_BATCH || current_bytes + size > BATCH_BYTES_MAX {
                    jobs.push(Job::Batch(std::mem::take(&mut current)));
                    current_bytes = 0;
                }
                current_bytes += size;
                current.push(body.graph_id);
            }
            _ => jobs.push(Job::Alone(body.graph_id)),
        }
    }
    if !current.is_empty() {
        jobs.push(Job::Batch(current));
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(id: usize, size: Option<i64>) -> MissingBody {
        MissingBody {
            graph_id: format!("m{id}"),
            size_estimate: size,
        }
    }

    fn shape(jobs: &[Job]) -> Vec<usize> {
        jobs.iter()
            .map(|j| match j {
                Job::Batch(ids) => ids.len(),
                Job::Alone(_) => 1,
            })
            .collect()
    }

    #[test]
    fn small_messages_batch_by_twenty_and_large_ones_go_alone() {
        let mut list: Vec<MissingBody> = (0..45).map(|i| missing(i, Some(20_000))).collect();
        list.push(missing(100, Some(5_000_000)));
        list.push(missing(101, None));
        let jobs = plan(list);
        assert_eq!(shape(&jobs), vec![20, 20, 1, 1, 5]);
        assert_eq!(jobs[2], Job::Alone("m100".into()));
        assert_eq!(jobs[3], Job::Alone("m101".into()));
    }

    #[test]
    fn a_batch_stays_under_its_byte_budget() {
        let list: Vec<MissingBody> = (0..10).map(|i| missing(i, Some(900_000))).collect();
        let jobs = plan(list);
        assert!(shape(&jobs).iter().all(|n| *n <= 4));
        assert_eq!(shape(&jobs).iter().sum::<usize>(), 10);
    }
}
