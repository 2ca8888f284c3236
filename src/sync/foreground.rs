//! `graphbridge mailbox sync ADDRESS`: one full sync in the foreground with a progress bar
//! (folders, messages, bytes, ETA). Progress is read from the store — the same numbers the
//! admin side shows — while the sync runs on the engine.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::{MailboxSync, SyncError};
use crate::mailstore::accounts::{self, SyncProgress};
use crate::mailstore::messages as stored;

/// How often the bar is redrawn from the store.
const TICK: Duration = Duration::from_millis(250);

/// What one foreground sync did.
#[derive(Debug, Clone, Copy)]
pub struct SyncSummary {
    pub progress: SyncProgress,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl MailboxSync {
    /// Folders and messages, then every missing body, with a progress bar on the terminal
    /// (hidden when standard error is not a terminal).
    pub async fn sync_foreground(self: &Arc<Self>) -> Result<SyncSummary, SyncError> {
        let started = std::time::Instant::now();
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg}\n  bodies [{bar:40}] {pos}/{len} ({eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let watcher = {
            let sync = self.clone();
            let bar = bar.clone();
            tokio::spawn(async move {
                loop {
                    if let Ok((p, bytes)) = sync.progress().await {
                        show(&bar, &p, bytes);
                    }
                    tokio::time::sleep(TICK).await;
                }
            })
        };
        let result = async {
            self.sync_once().await?;
            self.fetch_missing_bodies().await
        }
        .await;
        watcher.abort();
        let (progress, bytes) = self.progress().await?;
        show(&bar, &progress, bytes);
        bar.finish();
        result?;
        Ok(SyncSummary {
            progress,
            bytes,
            elapsed: started.elapsed(),
        })
    }

    /// Sync progress as the store has it, and the bytes of the stored bodies.
    pub async fn progress(&self) -> Result<(SyncProgress, u64), SyncError> {
        let account = self.account_id;
        Ok(self
            .store
            .call(move |c| {
                Ok((
                    accounts::sync_progress(c, account)?,
                    stored::stored_body_bytes(c, account)?,
                ))
            })
            .await?)
    }
}

fn show(bar: &ProgressBar, p: &SyncProgress, bytes: u64) {
    bar.set_length(p.messages);
    bar.set_position(p.bodies);
    bar.set_message(format!(
        "folders {}/{}, messages {}, {} stored",
        p.folders_synced,
        p.folders,
        p.messages,
        human_bytes(bytes)
    ));
}

/// `1.2 MB`-style sizes for people.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_well() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1_234_567), "1.2 MB");
    }
}
