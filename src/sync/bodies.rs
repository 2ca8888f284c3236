//! Message bodies: the MIME from `$value`, stored once and served forever (ARCHITECTURE
//! invariant 2). Fetched in the background newest first — small messages twenty to a
//! `$batch`, large ones on their own so a batch answer never holds many megabytes — and on
//! demand when a client asks for one that is not here yet.

use futures::StreamExt;

use super::{MailboxSync, SyncError};
use crate::graph::batch::{BatchRequest, MAX_BATCH};
use crate::graph::GraphClient;
use crate::mailstore::messages::{self as stored, MissingBody};
use crate::mailstore::{BodyOrigin, StoreError};

/// Missing bodies looked up per round of the background fetcher.
const ROUND: usize = 200;
/// Messages Exchange estimates above this are fetched alone, not in a batch.
const BATCH_ITEM_MAX: i64 = 1024 * 1024;
/// Estimated bytes per batch, so a batch answer stays a few megabytes.
const BATCH_BYTES_MAX: i64 = 4 * 1024 * 1024;
/// Batches in flight: the next one is on the wire while the last one is being stored (each
/// takes all of the mailbox's request slots while Graph works on it).
const BATCHES_IN_FLIGHT: usize = 2;

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
    pub async fn fetch_missing_bodies(&self) -> Result<usize, SyncError> {
        let account = self.account_id;
        let mut fetched = 0;
        loop {
            let missing = self
                .store
                .call(move |c| stored::missing_bodies(c, account, ROUND))
                .await?;
            if missing.is_empty() {
                break;
            }
            let stored_now = self.fetch_round(missing).await?;
            if stored_now == 0 {
                break;
            }
            fetched += stored_now;
            // Clients see new bodies (RFC822.SIZE, BODYSTRUCTURE) without waiting for the end.
            self.announce();
        }
        Ok(fetched)
    }

    async fn fetch_round(&self, missing: Vec<MissingBody>) -> Result<usize, SyncError> {
        let (batches, alone) = plan(missing);
        let batched = futures::stream::iter(batches)
            .map(|ids| self.fetch_batch(ids))
            .buffer_unordered(BATCHES_IN_FLIGHT)
            .collect::<Vec<_>>();
        let single = futures::stream::iter(alone)
            .map(|id| async move { self.body(&id).await.map(|_| 1) })
            .buffer_unordered(self.graph.max_in_flight())
            .collect::<Vec<_>>();
        let (batched, single) = futures::join!(batched, single);
        let mut stored_now = 0;
        for result in batched.into_iter().chain(single) {
            match result {
                Ok(n) => stored_now += n,
                // Deleted meanwhile: the next delta removes it.
                Err(SyncError::Gone) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(stored_now)
    }

    /// One `$batch` of `$value` requests; the bodies that came back are stored in one
    /// transaction. Messages Graph no longer has are skipped (the next delta removes them).
    async fn fetch_batch(&self, ids: Vec<String>) -> Result<usize, SyncError> {
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
        let stored_now = bodies.len();
        self.store
            .call(move |c| {
                let tx = c.transaction()?;
                for (id, raw) in &bodies {
                    store_graph_body(&tx, account, id, raw)?;
                }
                tx.commit()?;
                Ok(())
            })
            .await?;
        match failure {
            // What was stored stays stored; the rest is tried again in the next round.
            Some(e) if stored_now == 0 => Err(self.noted(e.into()).await),
            _ => Ok(stored_now),
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

/// Splits missing bodies into batches of small messages and messages fetched alone (large,
/// or of unknown size).
fn plan(missing: Vec<MissingBody>) -> (Vec<Vec<String>>, Vec<String>) {
    let mut batches: Vec<Vec<String>> = Vec::new();
    let mut alone = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut current_bytes = 0;
    for body in missing {
        match body.size_estimate {
            Some(size) if size <= BATCH_ITEM_MAX => {
                if current.len() == MAX_BATCH || current_bytes + size > BATCH_BYTES_MAX {
                    batches.push(std::mem::take(&mut current));
                    current_bytes = 0;
                }
                current_bytes += size;
                current.push(body.graph_id);
            }
            _ => alone.push(body.graph_id),
        }
    }
    if !current.is_empty() {
        batches.push(current);
    }
    (batches, alone)
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

    #[test]
    fn small_messages_batch_by_twenty_and_large_ones_go_alone() {
        let mut list: Vec<MissingBody> = (0..45).map(|i| missing(i, Some(20_000))).collect();
        list.push(missing(100, Some(5_000_000)));
        list.push(missing(101, None));
        let (batches, alone) = plan(list);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![20, 20, 5]
        );
        assert_eq!(alone, vec!["m100", "m101"]);
    }

    #[test]
    fn a_batch_stays_under_its_byte_budget() {
        let list: Vec<MissingBody> = (0..10).map(|i| missing(i, Some(900_000))).collect();
        let (batches, _) = plan(list);
        assert!(batches.iter().all(|b| b.len() <= 4));
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 10);
    }
}
