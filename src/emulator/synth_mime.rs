//! Synthetic messages for large fixtures: realistic sizes and MIME variety, reproducible.
//!
//! Each message is built from its own small random generator seeded with (seed, index), so a
//! message is the same whatever else is generated and generation can run on many threads.

use base64::Engine;

/// splitmix64: tiny, fast, and fixed forever (a library generator may change between versions,
/// which would change "reproducible" fixtures).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next();
        r
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }

    /// A standard normal deviate (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// The MIME shapes generated, in roughly the proportions real mailboxes show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Plain,
    Alternative,
    Mixed,
    Related,
    Latin1Qp,
}

const SENTENCES: &[&str] = &[
    "Thanks for the quick reply, the figures look right to me.",
    "Could you send the signed copy by the end of the week?",
    "Please find the updated proposal attached for your review.",
    "We moved the meeting to Thursday at 10:00 in room 4.",
    "The shipment left the warehouse this morning and should arrive on Monday.",
    "Vielen Dank für Ihre Bestellung, die Lieferung erfolgt in KW 12.",
    "Könnten Sie uns die Maße für die Größenänderung schicken?",
    "Grüße aus München und ein schönes Wochenende!",
    "Merci pour votre message, nous revenons vers vous très rapidement.",
    "La réunion de suivi est prévue à la fin du trimestre, café compris.",
    "Takk for sist, vi ser frem til å høre fra dere igjen.",
    "Prisene for ærfugldun er økt siden forrige kvartal.",
    "Let me know whether the invoice number 2026-0412 matches your records.",
    "I have copied Sarah, who handles the accounts on our side.",
];

const SUBJECTS: &[&str] = &[
    "Quarterly figures",
    "Re: Order 4711",
    "Angebot für Größe XL",
    "Réunion de lancement",
    "Møte om prisene",
    "Invoice 2026-0412",
    "Meeting notes",
    "Fwd: Shipping update",
    "Lieferung verzögert – Rückfrage",
    "Contract renewal",
];

const NAMES: &[(&str, &str)] = &[
    ("Anna Müller", "anna.mueller@fabrikam.test"),
    ("François Dupré", "francois.dupre@adatum.test"),
    ("Øystein Håland", "oystein@northwind.test"),
    ("Sarah Connor", "sarah@litware.test"),
    ("Jürgen Weiß", "j.weiss@tailspin.test"),
    ("Priya Raman", "priya@woodgrove.test"),
    ("Chen Wei", "chen.wei@proseware.test"),
    ("Zoë O'Brien", "zoe@fourthcoffee.test"),
];

/// A 16×16 PNG, for inline images.
const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAFUlEQVR4nGNgqLhCGhrVMKph+GoA\r\nAKzFTBBwoh/QAAAAAElFTkSuQmCC";

/// What a generated message looks like, decided before its bytes are written.
pub struct Plan {
    pub shape: Shape,
    /// Approximate size of the whole message in bytes.
    pub target: usize,
    pub encoded_headers: bool,
}

/// Draws a message's plan: sizes log-normal around `median` (σ≈1), and with probability
/// `large_share` a multi-MB message carrying attachments.
pub fn plan(rng: &mut Rng, median: usize, large_share: f64) -> Plan {
    if rng.chance(large_share) {
        // 1–12 MB, log-uniform: the tail that makes RFC822.SIZE and $value matter.
        let mb = (12f64.ln() * rng.unit()).exp();
        return Plan {
            shape: Shape::Mixed,
            target: (mb * 1_048_576.0) as usize,
            encoded_headers: rng.chance(0.3),
        };
    }
    let size = (median as f64 * rng.normal().exp()).clamp(1_500.0, 2_000_000.0) as usize;
    let r = rng.unit();
    let shape = if r < 0.30 {
        Shape::Plain
    } else if r < 0.68 {
        Shape::Alternative
    } else if r < 0.85 {
        Shape::Mixed
    } else if r < 0.95 {
        Shape::Related
    } else {
        Shape::Latin1Qp
    };
    Plan {
        shape,
        target: size,
        encoded_headers: rng.chance(0.3),
    }
}

/// RFC 2047 encoding of a header value (B or Q, chosen by the generator).
fn encode_word(rng: &mut Rng, s: &str, force: bool) -> String {
    if s.is_ascii() && !force {
        return s.to_string();
    }
    if rng.chance(0.5) {
        let b = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        format!("=?UTF-8?B?{b}?=")
    } else {
        let mut q = String::from("=?UTF-8?Q?");
        for byte in s.bytes() {
            match byte {
                b' ' => q.push('_'),
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' => q.push(byte as char),
                _ => q.push_str(&format!("={byte:02X}")),
            }
        }
        q.push_str("?=");
        q
    }
}

/// Text of about `len` bytes, one sentence per line.
fn text(rng: &mut Rng, len: usize) -> String {
    let mut out = String::with_capacity(len + 100);
    while out.len() < len {
        let sentence = SENTENCES[rng.below(SENTENCES.len())];
        out.push_str(sentence);
        out.push_str(if rng.chance(0.2) { "\r\n\r\n" } else { "\r\n" });
    }
    out
}

fn html(rng: &mut Rng, len: usize, cid: Option<&str>) -> String {
    let mut out = String::from("<html><body>\r\n");
    if let Some(c) = cid {
        out.push_str(&format!("<p><img src=\"cid:{c}\" alt=\"logo\"></p>\r\n"));
    }
    while out.len() < len {
        out.push_str("<p>");
        let sentence = SENTENCES[rng.below(SENTENCES.len())];
        out.push_str(sentence);
        out.push_str("</p>\r\n");
    }
    out.push_str("</body></html>\r\n");
    out
}

/// `len` pseudo-random bytes as base64 in 76-character lines.
fn base64_lines(rng: &mut Rng, len: usize) -> String {
    let mut raw = Vec::with_capacity(len + 8);
    while raw.len() < len {
        raw.extend_from_slice(&rng.next().to_le_bytes());
    }
    raw.truncate(len);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    let mut out = String::with_capacity(b64.len() + b64.len() / 38 + 2);
    for chunk in b64.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push_str("\r\n");
    }
    out
}

/// Latin-1 quoted-printable of a UTF-8 text (characters outside Latin-1 become `?`).
fn latin1_qp(s: &str) -> String {
    let mut out = String::new();
    let mut line = 0;
    for ch in s.chars() {
        let piece = match ch {
            '\r' => continue,
            '\n' => {
                out.push_str("\r\n");
                line = 0;
                continue;
            }
            c if (c as u32) < 0x80 && c != '=' => c.to_string(),
            c if (c as u32) < 0x100 => format!("={:02X}", c as u32),
            _ => "?".to_string(),
        };
        if line + piece.len() > 73 {
            out.push_str("=\r\n");
            line = 0;
        }
        line += piece.len();
        out.push_str(&piece);
    }
    out
}

/// Header fields and identity of one message.
pub struct Envelope {
    pub index: usize,
    pub domain: String,
    pub mailbox: String,
    pub date: String,
    pub outgoing: bool,
    /// Message-ID of an earlier message this one answers.
    pub reply_to: Option<String>,
}

pub fn message_id(seed: u64, index: usize, domain: &str) -> String {
    format!("<gen.{seed:x}.{index}@{domain}>")
}

/// Builds one message's bytes.
pub fn build(rng: &mut Rng, seed: u64, env: &Envelope, plan: &Plan) -> Vec<u8> {
    let (name, addr) = *rng.pick(NAMES);
    let subject = rng.pick(SUBJECTS).to_string();
    let subject = if env.reply_to.is_some() && !subject.starts_with("Re:") {
        format!("Re: {subject}")
    } else {
        subject
    };
    let enc = plan.encoded_headers;
    let (from, to) = if env.outgoing {
        (
            env.mailbox.clone(),
            format!("{} <{addr}>", encode_word(rng, name, enc)),
        )
    } else {
        (
            format!("{} <{addr}>", encode_word(rng, name, enc)),
            env.mailbox.clone(),
        )
    };
    let force_subject = enc && rng.chance(0.5);
    let subject = encode_word(rng, &subject, force_subject);
    let mut h = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: {}\r\nMIME-Version: 1.0\r\n",
        subject,
        env.date,
        message_id(seed, env.index, &env.domain),
    );
    if let Some(parent) = &env.reply_to {
        h.push_str(&format!(
            "In-Reply-To: {parent}\r\nReferences: {parent}\r\n"
        ));
    }
    let body_len = plan.target.saturating_sub(h.len() + 200);
    let b = format!("b{:x}.{}", seed, env.index);
    let body = match plan.shape {
        Shape::Plain => format!(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}",
            text(rng, body_len)
        ),
        Shape::Latin1Qp => format!(
            "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}",
            latin1_qp(&text(rng, body_len * 9 / 10))
        ),
        Shape::Alternative => alternative(rng, &b, body_len, None),
        Shape::Related => related(rng, &b, body_len),
        Shape::Mixed => mixed(rng, &b, body_len, plan.target > 1_000_000),
    };
    h.push_str(&body);
    h.into_bytes()
}

fn alternative(rng: &mut Rng, b: &str, len: usize, cid: Option<&str>) -> String {
    format!(
        "Content-Type: multipart/alternative; boundary=\"alt-{b}\"\r\n\r\n--alt-{b}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}--alt-{b}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}--alt-{b}--\r\n",
        text(rng, len * 2 / 5),
        html(rng, len * 3 / 5, cid)
    )
}

fn related(rng: &mut Rng, b: &str, len: usize) -> String {
    let cid = format!("img.{b}@generated.test");
    format!(
        "Content-Type: multipart/related; boundary=\"rel-{b}\"; type=\"text/html\"\r\n\r\n--rel-{b}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}--rel-{b}\r\nContent-Type: image/png; name=\"logo.png\"\r\nContent-Disposition: inline; filename=\"logo.png\"\r\nContent-ID: <{cid}>\r\nContent-Transfer-Encoding: base64\r\n\r\n{PNG_B64}\r\n--rel-{b}--\r\n",
        html(rng, len, Some(&cid))
    )
}

const ATTACHMENTS: &[(&str, &str)] = &[
    ("application/pdf", "Angebot_2026.pdf"),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "figures-q1.xlsx",
    ),
    ("image/jpeg", "photo 0412.jpg"),
    ("application/zip", "Pläne.zip"),
];

fn mixed(rng: &mut Rng, b: &str, len: usize, large: bool) -> String {
    // Attachments take most of the size; a small text part leads.
    let text_len = if large { 4_000 } else { (len / 5).max(400) };
    let parts = if large { 1 } else { 1 + rng.below(2) };
    let per = len.saturating_sub(text_len) * 3 / 4 / parts;
    let mut out = format!(
        "Content-Type: multipart/mixed; boundary=\"mix-{b}\"\r\n\r\n--mix-{b}\r\n{}",
        alternative(rng, &format!("{b}.0"), text_len, None)
    );
    for _ in 0..parts {
        let (ct, name) = *rng.pick(ATTACHMENTS);
        let fname = if name.is_ascii() {
            format!("filename=\"{name}\"")
        } else {
            let enc: String = name
                .bytes()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == b'.' {
                        (c as char).to_string()
                    } else {
                        format!("%{c:02X}")
                    }
                })
                .collect();
            format!("filename*=utf-8''{enc}")
        };
        out.push_str(&format!(
            "--mix-{b}\r\nContent-Type: {ct}\r\nContent-Disposition: attachment; {fname}\r\nContent-Transfer-Encoding: base64\r\n\r\n{}",
            base64_lines(rng, per.max(200))
        ));
    }
    out.push_str(&format!("--mix-{b}--\r\n"));
    out
}
