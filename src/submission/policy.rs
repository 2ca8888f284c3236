//! Microsoft 365's sending rules as pure decisions: the recipient limit, serial mail with
//! attachments, and the sending pace. Callers pass the time in, so tests need no clock.

/// Every recipient once: envelope and To/Cc/Bcc, compared without case.
pub fn distinct_recipients<'a>(lists: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for address in lists {
        let address = address.trim();
        if address.is_empty() {
            continue;
        }
        if !out.iter().any(|a| a.eq_ignore_ascii_case(address)) {
            out.push(address.to_string());
        }
    }
    out
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|x| b.iter().any(|y| y.eq_ignore_ascii_case(x)))
}

/// True when a message with attachments is the `copies`-th (or later) copy of the same
/// attachments sent to other recipients; `earlier` holds the recipient lists of the copies
/// sent within the window.
pub fn is_serial(copies: usize, earlier: &[Vec<String>], recipients: &[String]) -> bool {
    if copies == 0 {
        return false;
    }
    let others = earlier.iter().filter(|r| !same_set(r, recipients)).count();
    others + 1 >= copies
}

/// Exchange Online's sending pace for one account.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub messages_per_minute: usize,
    pub recipients_per_day: usize,
}

/// When a message to `recipients` recipients may be sent, given the account's sends
/// (time, recipients) of the last day: None means now.
pub fn next_slot(now: i64, history: &[(i64, u32)], recipients: u32, pace: Pace) -> Option<i64> {
    let mut earliest = now;
    let last_minute: Vec<i64> = history
        .iter()
        .filter(|(t, _)| *t > now - 60)
        .map(|(t, _)| *t)
        .collect();
    if pace.messages_per_minute > 0 && last_minute.len() >= pace.messages_per_minute {
        // The slot frees when the oldest send that keeps us at the limit leaves the minute.
        let mut times = last_minute;
        times.sort_unstable();
        let index = times.len() - pace.messages_per_minute;
        earliest = earliest.max(times[index] + 60);
    }
    let mut day: Vec<(i64, u32)> = history
        .iter()
        .copied()
        .filter(|(t, _)| *t > now - 86_400)
        .collect();
    day.sort_unstable();
    let limit = pace.recipients_per_day as u64;
    let mut used: u64 = day.iter().map(|(_, n)| *n as u64).sum();
    let mut expiring = day.iter();
    while used + recipients as u64 > limit {
        match expiring.next() {
            Some((t, n)) => {
                used -= *n as u64;
                earliest = earliest.max(t + 86_400);
            }
            None => break,
        }
    }
    (earliest > now).then_some(earliest)
}

/// Seconds to wait before retry number `attempts` (1-based): 30 s doubling up to an hour.
pub fn retry_delay(attempts: u32) -> i64 {
    let doubled = 30i64.saturating_mul(1i64 << attempts.saturating_sub(1).min(12));
    doubled.min(3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recipients_are_counted_once_across_lists() {
        let envelope = addrs(&["A@x.test", "b@x.test"]);
        let header = addrs(&["a@x.test", "c@x.test", "B@X.TEST"]);
        let all = distinct_recipients(envelope.iter().chain(&header));
        assert_eq!(all, addrs(&["A@x.test", "b@x.test", "c@x.test"]));
    }

    #[test]
    fn third_copy_to_others_is_serial() {
        let me = addrs(&["c@x"]);
        assert!(!is_serial(3, &[], &me));
        assert!(!is_serial(3, &[addrs(&["a@x"])], &me));
        assert!(is_serial(3, &[addrs(&["a@x"]), addrs(&["b@x"])], &me));
        // Re-sending to the same people is not serial mail.
        assert!(!is_serial(3, &[addrs(&["c@x"]), addrs(&["C@x"])], &me));
        assert!(!is_serial(0, &[addrs(&["a@x"]), addrs(&["b@x"])], &me));
    }

    #[test]
    fn pace_waits_for_the_minute_and_the_day() {
        let pace = Pace {
            messages_per_minute: 2,
            recipients_per_day: 10,
        };
        assert_eq!(next_slot(1000, &[], 3, pace), None);
        assert_eq!(next_slot(1000, &[(990, 1)], 3, pace), None);
        assert_eq!(next_slot(1000, &[(950, 1), (990, 1)], 1, pace), Some(1010));
        // 9 recipients used today: 2 more must wait until the first send is a day old.
        let history = [(100, 4), (200, 5)];
        assert_eq!(next_slot(1000, &history, 1, pace), None);
        assert_eq!(next_slot(1000, &history, 2, pace), Some(100 + 86_400));
    }

    #[test]
    fn retry_delay_doubles_up_to_an_hour() {
        assert_eq!(retry_delay(1), 30);
        assert_eq!(retry_delay(2), 60);
        assert_eq!(retry_delay(3), 120);
        assert_eq!(retry_delay(40), 3600);
    }
}

/// The rules that apply to a mailbox: the configured defaults and the configuration's
/// per-mailbox overrides, then what an administrator set for the mailbox (`graphbridge
/// mailbox set`, the web admin), which wins.
pub fn for_mailbox(
    bridge: &crate::bridge::Bridge,
    mailbox: &crate::mailstore::MailboxRecord,
) -> crate::config::MailboxPolicy {
    let mut policy = bridge.config.submission.policy_for(&mailbox.address);
    let id = mailbox.id;
    match bridge
        .store
        .call_blocking(|c| crate::mailstore::accounts::stored_mailbox_settings(c, id))
    {
        Ok(Some(settings)) => apply_settings(&mut policy, &settings),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(mailbox = %mailbox.address, error = %e, "cannot read mailbox settings; using the configured policy")
        }
    }
    policy
}

fn apply_settings(
    policy: &mut crate::config::MailboxPolicy,
    settings: &crate::mailstore::accounts::MailboxSettings,
) {
    use crate::config::{LargeAttachments, SentCopy};
    use crate::mailstore::accounts::{AttachmentPolicy, SentCopy as StoredSentCopy};
    policy.max_recipients = settings.recipient_limit as usize;
    policy.sent_copy = match settings.sent_copy {
        StoredSentCopy::Graph => SentCopy::Graph,
        StoredSentCopy::Client => SentCopy::Client,
    };
    policy.book_external_sends = settings.book_external_sends;
    match settings.attachment_policy {
        AttachmentPolicy::Keep => {}
        AttachmentPolicy::DownloadLink => {
            policy.auto_links = true;
            policy.large_attachments = LargeAttachments::Links;
        }
        AttachmentPolicy::Refuse => policy.refuse_attachments = true,
    }
    if !settings.agreement_text.is_empty() {
        policy.agreement_text = settings.agreement_text.clone();
    }
}

#[cfg(test)]
mod settings_tests {
    use super::*;
    use crate::mailstore::accounts::{AttachmentPolicy, MailboxSettings, SentCopy};

    #[test]
    fn administrator_settings_win_over_configured_defaults() {
        let mut policy = crate::config::SubmissionConfig::default().policy_for("a@x.test");
        let settings = MailboxSettings {
            recipient_limit: 3,
            sent_copy: SentCopy::Client,
            book_external_sends: false,
            attachment_policy: AttachmentPolicy::Refuse,
            agreement_text: "Terms".into(),
            ..MailboxSettings::default()
        };
        apply_settings(&mut policy, &settings);
        assert_eq!(policy.max_recipients, 3);
        assert_eq!(policy.sent_copy, crate::config::SentCopy::Client);
        assert!(!policy.book_external_sends && policy.refuse_attachments);
        assert_eq!(policy.agreement_text, "Terms");
    }
}
