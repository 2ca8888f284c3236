//! Large synthetic fixtures: a tenant with one big mailbox, for benchmarks and scale tests.
//!
//! `write_fixtures(dir, &GenerateOptions)` writes an ordinary fixtures folder (`tenant.json`,
//! `mailbox.json`, `.eml` files) that `--fixtures dir` loads. The same options give the same
//! bytes: each message depends only on the seed and its index.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::format::{FolderEntry, MailboxEntry, MailboxFile, MessageEntry, TenantFile};
use super::synth_mime::{self, Envelope, Rng, Shape};
use super::EmulatorError;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateOptions {
    /// Seed of everything random; the same seed gives the same fixtures.
    pub seed: u64,
    /// Messages in the mailbox.
    pub messages: usize,
    /// The mailbox's address (also its sign-in name).
    pub mailbox: String,
    /// User folders to spread mail over, besides the default ones.
    pub folders: usize,
    /// Median message size in bytes.
    pub median_bytes: usize,
    /// Share of messages (0–1) that are 1–12 MB with attachments.
    pub large_share: f64,
    /// The newest message's date; the mail spans `years` before it.
    pub newest: DateTime<Utc>,
    pub years: u32,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            seed: 1,
            messages: 20_000,
            mailbox: "bulk@contoso.test".into(),
            folders: 40,
            median_bytes: 20_000,
            large_share: 0.005,
            newest: Utc
                .with_ymd_and_hms(2026, 1, 31, 12, 0, 0)
                .single()
                .unwrap_or_else(Utc::now),
            years: 3,
        }
    }
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GenerateSummary {
    pub messages: usize,
    pub folders: usize,
    pub bytes: u64,
    pub largest: usize,
    /// Messages per MIME shape: plain, alternative, mixed, related, latin-1 QP.
    pub shapes: [usize; 5],
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> EmulatorError {
    EmulatorError::Fixtures {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

const TOP_FOLDERS: &[&str] = &[
    "Projects",
    "Customers",
    "Suppliers",
    "Finance",
    "Travel",
    "Newsletters",
    "Team",
    "Legal",
];
const SUB_FOLDERS: &[&str] = &[
    "2024",
    "2025",
    "2026",
    "Fabrikam",
    "Northwind",
    "Adatum",
    "Contoso Ltd",
    "Archiv Ü",
    "Réclamations",
    "Q1",
    "Q2",
    "Q3",
    "Q4",
];

/// User folder paths: top-level folders, then children below them.
fn folder_paths(rng: &mut Rng, n: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for top in TOP_FOLDERS.iter().take(n) {
        out.push((*top).to_string());
    }
    let mut i = 0;
    while out.len() < n {
        let parent = TOP_FOLDERS[rng.below(TOP_FOLDERS.len().min(n))];
        let name = format!(
            "{} {}",
            SUB_FOLDERS[i % SUB_FOLDERS.len()],
            i / SUB_FOLDERS.len()
        );
        out.push(format!("{parent}/{}", name.trim_end_matches(" 0")));
        i += 1;
    }
    out
}

/// Where message `i` lives: mostly Inbox, Sent Items and Archive; the rest spread over user
/// folders, the first ones fuller than the last (as real folder sizes are).
fn folder_for(rng: &mut Rng, users: &[String]) -> (String, bool) {
    let r = rng.unit();
    let wk = |name: &str| (name.to_string(), name == "sentitems");
    if r < 0.40 || users.is_empty() {
        wk("inbox")
    } else if r < 0.55 {
        wk("sentitems")
    } else if r < 0.68 {
        wk("archive")
    } else if r < 0.71 {
        wk("deleteditems")
    } else if r < 0.715 {
        wk("drafts")
    } else {
        // Zipf-like: index ~ n^u.
        let n = users.len() as f64;
        let idx = (n.powf(rng.unit()) - 1.0) as usize;
        (users[idx.min(users.len() - 1)].clone(), false)
    }
}

/// One message's entry and bytes.
fn make(
    opts: &GenerateOptions,
    users: &[String],
    domain: &str,
    i: usize,
) -> (MessageEntry, Vec<u8>, Shape) {
    let mut rng = Rng::new(opts.seed, i as u64);
    let (folder, outgoing) = folder_for(&mut rng, users);
    let span = i64::from(opts.years.max(1)) * 365 * 24 * 3600;
    // Older messages first, with jitter, so received order roughly follows the index.
    let n = opts.messages.max(1) as i64;
    let offset = span - span * i as i64 / n + rng.below(3600) as i64;
    let received = opts.newest - Duration::seconds(offset);
    let plan = synth_mime::plan(&mut rng, opts.median_bytes, opts.large_share);
    let reply_to =
        (i > 0 && rng.chance(0.1)).then(|| synth_mime::message_id(opts.seed, rng.below(i), domain));
    let env = Envelope {
        index: i,
        domain: domain.to_string(),
        mailbox: opts.mailbox.clone(),
        date: (received - Duration::seconds(rng.below(300) as i64 + 5)).to_rfc2822(),
        outgoing,
        reply_to,
    };
    let raw = synth_mime::build(&mut rng, opts.seed, &env, &plan);
    let entry = MessageEntry {
        file: format!("mail/{:04}/{:07}.eml", i / 1000, i),
        is_read: Some(outgoing || !rng.chance(0.08)),
        flag: rng.chance(0.03).then(|| "flagged".to_string()),
        categories: if rng.chance(0.05) {
            vec!["Kunde".to_string()]
        } else {
            Vec::new()
        },
        received_date_time: Some(received),
        folder,
        ..MessageEntry::default()
    };
    (entry, raw, plan.shape)
}

fn shape_index(s: Shape) -> usize {
    match s {
        Shape::Plain => 0,
        Shape::Alternative => 1,
        Shape::Mixed => 2,
        Shape::Related => 3,
        Shape::Latin1Qp => 4,
    }
}

/// Writes a fixtures folder with one mailbox of `opts.messages` synthetic messages.
pub fn write_fixtures(
    dir: &Path,
    opts: &GenerateOptions,
) -> Result<GenerateSummary, EmulatorError> {
    if !(0.0..=1.0).contains(&opts.large_share) {
        return Err(EmulatorError::InvalidArgument(
            "large_share must be between 0 and 1".into(),
        ));
    }
    let domain = opts
        .mailbox
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .ok_or_else(|| EmulatorError::InvalidArgument("the mailbox needs an address".into()))?;
    let users = folder_paths(&mut Rng::new(opts.seed, u64::MAX), opts.folders);
    let mdir: PathBuf = dir.join("mailbox");
    std::fs::create_dir_all(&mdir).map_err(|e| io_err(&mdir, e))?;
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let (users, domain, mdir) = (&users, &domain, &mdir);
                scope.spawn(move || write_share(opts, users, domain, mdir, w, workers))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io_err(dir, "a generator thread failed")))
            })
            .collect::<Vec<_>>()
    });
    let mut entries: Vec<(usize, MessageEntry)> = Vec::with_capacity(opts.messages);
    let mut summary = GenerateSummary {
        folders: users.len(),
        ..GenerateSummary::default()
    };
    for r in results {
        let (part, s) = r?;
        entries.extend(part);
        summary.bytes += s.bytes;
        summary.largest = summary.largest.max(s.largest);
        for (a, b) in summary.shapes.iter_mut().zip(s.shapes) {
            *a += b;
        }
    }
    entries.sort_by_key(|(i, _)| *i);
    summary.messages = entries.len();
    let file = MailboxFile {
        folders: users.into_iter().map(FolderEntry::Path).collect(),
        messages: entries.into_iter().map(|(_, e)| e).collect(),
    };
    write_json(&mdir.join("mailbox.json"), &file)?;
    let tenant = TenantFile {
        tenant_id: Some(super::ids::seeded::guid(&format!(
            "generated\0{}",
            opts.seed
        ))),
        send_from_alias_enabled: false,
        mailboxes: vec![MailboxEntry {
            user_principal_name: opts.mailbox.clone(),
            display_name: "Bulk Mailbox".into(),
            aliases: Vec::new(),
            dir: Some("mailbox".into()),
            full_access: Vec::new(),
            send_as: Vec::new(),
            user_id: None,
        }],
    };
    write_json(&dir.join("tenant.json"), &tenant)?;
    Ok(summary)
}

/// Messages `w`, `w + n`, `w + 2n`, … written by one thread.
fn write_share(
    opts: &GenerateOptions,
    users: &[String],
    domain: &str,
    mdir: &Path,
    w: usize,
    n: usize,
) -> Result<(Vec<(usize, MessageEntry)>, GenerateSummary), EmulatorError> {
    let mut out = Vec::new();
    let mut s = GenerateSummary::default();
    for i in (w..opts.messages).step_by(n) {
        let (entry, raw, shape) = make(opts, users, domain, i);
        let path = mdir.join(&entry.file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        std::fs::write(&path, &raw).map_err(|e| io_err(&path, e))?;
        s.bytes += raw.len() as u64;
        s.largest = s.largest.max(raw.len());
        s.shapes[shape_index(shape)] += 1;
        out.push((i, entry));
    }
    Ok((out, s))
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<(), EmulatorError> {
    let text = serde_json::to_string(v).map_err(|e| io_err(path, e))?;
    std::fs::write(path, text).map_err(|e| io_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_realistic_and_shapes_varied() {
        let opts = GenerateOptions::default();
        let users = folder_paths(&mut Rng::new(1, u64::MAX), 40);
        let mut sizes: Vec<usize> = (0..2000)
            .map(|i| make(&opts, &users, "contoso.test", i).1.len())
            .collect();
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2];
        assert!((14_000..30_000).contains(&median), "median {median}");
        assert!(sizes[sizes.len() - 1] > 1_000_000, "a multi-MB tail");
    }

    #[test]
    fn generation_is_reproducible_and_parses() {
        let opts = GenerateOptions::default();
        let users = folder_paths(&mut Rng::new(1, u64::MAX), 40);
        for i in [0, 7, 99, 1234] {
            let (e1, a, _) = make(&opts, &users, "contoso.test", i);
            let (e2, b, _) = make(&opts, &users, "contoso.test", i);
            assert_eq!(a, b);
            assert_eq!(e1.folder, e2.folder);
            let p = super::super::mime::parse(&a).expect("parses");
            assert!(!p.subject.is_empty());
        }
    }
}
