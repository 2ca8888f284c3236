//! Flag and keyword changes on their way to Graph (`PATCH /messages/{id}`).
//!
//! A change goes out at once when nothing else is waiting. Changes made while earlier ones
//! are on the wire (a STORE over many messages, several sessions at once) wait together and
//! go out as one `$batch` of up to twenty: one round trip instead of twenty. Each change gets
//! its own answer: Graph throttles and fails the requests of a batch one by one, the client
//! retries those that failed for a while (429, 503) on its own, and whatever still failed is
//! reported to the caller of that change, never dropped.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::oneshot;

use crate::graph::batch::{BatchRequest, MAX_BATCH};
use crate::graph::{GraphClient, GraphError};

type Answer = Result<(), GraphError>;

struct Pending {
    graph_id: String,
    patch: Value,
    answer: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct State {
    waiting: VecDeque<Pending>,
    /// Whether a sender task is running; it exits when it finds nothing waiting.
    sending: bool,
}

pub(super) struct FlagQueue {
    graph: Arc<GraphClient>,
    state: Mutex<State>,
}

impl FlagQueue {
    pub(super) fn new(graph: Arc<GraphClient>) -> Arc<FlagQueue> {
        Arc::new(FlagQueue {
            graph,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A queue and a flag; a panic elsewhere cannot leave them inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends `patches` (message id, PATCH body) and waits for Graph's answer to each, in the
    /// order given.
    pub(super) async fn patch_all(self: &Arc<Self>, patches: Vec<(String, Value)>) -> Vec<Answer> {
        if patches.is_empty() {
            return Vec::new();
        }
        let mut answers = Vec::with_capacity(patches.len());
        let start = {
            let mut state = self.lock();
            for (graph_id, patch) in patches {
                let (answer, receiver) = oneshot::channel();
                state.waiting.push_back(Pending {
                    graph_id,
                    patch,
                    answer,
                });
                answers.push(receiver);
            }
            !std::mem::replace(&mut state.sending, true)
        };
        // The sender is a task of its own, so a caller that goes away (a client hanging up
        // mid-STORE) cannot strand the changes others are waiting on.
        if start {
            tokio::spawn(self.clone().send_waiting());
        }
        let mut out = Vec::with_capacity(answers.len());
        for receiver in answers {
            // A sender that vanished (the runtime shutting down) answers nothing.
            out.push(receiver.await.unwrap_or(Err(GraphError::Closed)));
        }
        out
    }

    async fn send_waiting(self: Arc<Self>) {
        loop {
            let chunk: Vec<Pending> = {
                let mut state = self.lock();
                if state.waiting.is_empty() {
                    state.sending = false;
                    return;
                }
                let n = state.waiting.len().min(MAX_BATCH);
                state.waiting.drain(..n).collect()
            };
            self.send(chunk).await;
        }
    }

    async fn send(&self, mut chunk: Vec<Pending>) {
        if chunk.len() == 1 {
            if let Some(one) = chunk.pop() {
                let answer = self.graph.patch_message(&one.graph_id, one.patch).await;
                // The caller may have gone away; nothing to tell then.
                let _ = one.answer.send(answer);
            }
            return;
        }
        let requests: Vec<BatchRequest> = chunk
            .iter()
            .map(|p| BatchRequest::patch(GraphClient::message_path(&p.graph_id), p.patch.clone()))
            .collect();
        match self.graph.batch(&requests).await {
            Ok(results) => {
                for (pending, result) in chunk.into_iter().zip(results) {
                    let _ = pending.answer.send(result.map(drop));
                }
            }
            // The batch itself could not be sent (after the client's retries): every change
            // in it failed, and each caller hears why.
            Err(e) => {
                for pending in chunk {
                    let _ = pending.answer.send(Err(e.duplicate()));
                }
            }
        }
    }
}
