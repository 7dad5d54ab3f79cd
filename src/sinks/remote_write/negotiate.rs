//! Which form a remote-write sink sends in: the configured protocol and compression, or what
//! `auto` found the receiver takes. `auto` tries remote-write 2.0 first, then 1.0 with zstd,
//! and falls back on the receiver's answer (2.0: 415, a 400 about the content type, or a 2xx
//! without the `…-Written` headers; zstd: 415 or 400, as vmagent does). The outcome is kept in
//! a private file in the sink's state directory, so a restart does not probe again, and a
//! fall-back is tried again after a day. One log line each time the outcome changes.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::config::{Choice, Compression, Protocol};
use crate::sinks::send::Answer;
use crate::wire::form::{Form, V2_WRITTEN_HEADERS};

/// How long a fall-back holds before the preferred form is tried again.
pub const REPROBE_AFTER_MS: i64 = 24 * 3600 * 1000;

/// What is known of the receiver, per thing `auto` tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Known {
    #[default]
    Untried,
    Accepted,
    /// Refused at this wall-clock time (ms).
    Refused(i64),
}

/// The file's content.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Remembered {
    #[serde(default)]
    v2: Known,
    #[serde(default)]
    zstd: Known,
}

/// What to do after an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Judged {
    /// The answer stands (delivered, or whatever [`crate::sinks::send::classify`] made of it).
    Stands,
    /// The receiver does not take this form: send the same batch again in the next one.
    FellBack,
}

pub struct Negotiator {
    sink: String,
    protocol: Choice<Protocol>,
    compression: Choice<Compression>,
    file: Option<PathBuf>,
    known: Remembered,
}

impl Negotiator {
    /// Reads what an earlier run found from `file` (missing or unreadable: start afresh).
    pub fn new(
        sink: &str,
        protocol: Choice<Protocol>,
        compression: Choice<Compression>,
        file: Option<PathBuf>,
    ) -> Negotiator {
        let known = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Negotiator {
            sink: sink.to_string(),
            protocol,
            compression,
            file,
            known,
        }
    }

    /// The form the next request goes out in, at wall-clock time `now_ms`.
    pub fn form(&self, now_ms: i64) -> Form {
        let holds = |k: Known| matches!(k, Known::Refused(at) if now_ms - at < REPROBE_AFTER_MS && now_ms >= at);
        let protocol = match self.protocol {
            Choice::Fixed(p) => p,
            Choice::Auto if holds(self.known.v2) => Protocol::V1,
            Choice::Auto => Protocol::V2,
        };
        let compression = match (protocol, self.compression) {
            (Protocol::V2, _) => Compression::Snappy,
            (_, Choice::Fixed(c)) => c,
            (_, Choice::Auto) if holds(self.known.zstd) => Compression::Snappy,
            (_, Choice::Auto) => Compression::Zstd,
        };
        Form {
            protocol,
            compression,
        }
    }

    /// Whether a request in `form` would find out whether the receiver takes it (2.0 or zstd
    /// under `auto`, not yet accepted): the sender then tries it on the batch's first series
    /// alone, so a receiver that turns out not to take it costs one series' bytes, not a whole
    /// batch's (with `profile = "metered"`, three minutes of polls).
    pub fn probing(&self, form: Form) -> bool {
        (form.protocol == Protocol::V2
            && self.protocol == Choice::Auto
            && self.known.v2 != Known::Accepted)
            || (form.protocol == Protocol::V1
                && form.compression == Compression::Zstd
                && self.compression == Choice::Auto
                && self.known.zstd != Known::Accepted)
    }

    /// What the status page shows before anything was sent.
    pub fn describe(&self) -> String {
        match (self.protocol, self.compression) {
            (Choice::Fixed(p), Choice::Fixed(c)) => Form {
                protocol: p,
                compression: c,
            }
            .describe()
            .to_string(),
            _ => format!(
                "remote-write {}, {} (negotiated)",
                match self.protocol {
                    Choice::Fixed(Protocol::V1) => "1.0",
                    Choice::Fixed(Protocol::V2) => "2.0",
                    Choice::Auto => "2.0 or 1.0",
                },
                match self.compression {
                    Choice::Fixed(Compression::Snappy) => "snappy",
                    Choice::Fixed(Compression::Zstd) => "zstd",
                    Choice::Auto => "zstd or snappy",
                }
            ),
        }
    }

    /// Learns from the answer to a request sent in `form`.
    pub fn judge(&mut self, form: Form, answer: &Answer, now_ms: i64) -> Judged {
        let before = self.known;
        let status = answer.status;
        let mut judged = Judged::Stands;
        if form.protocol == Protocol::V2 && self.protocol == Choice::Auto {
            if refuses_v2(answer, before.v2 != Known::Accepted) {
                self.known.v2 = Known::Refused(now_ms);
                judged = Judged::FellBack;
                if !matches!(before.v2, Known::Refused(_)) {
                    tracing::info!(
                        sink = %self.sink,
                        "the receiver does not take remote-write 2.0 ({}); sending 1.0 (queued batches are converted, none is lost); trying 2.0 again in a day",
                        why_v2(answer)
                    );
                }
            } else if status.is_success() {
                self.known.v2 = Known::Accepted;
                if before.v2 != Known::Accepted {
                    tracing::info!(sink = %self.sink, "the receiver takes remote-write 2.0; sending 2.0");
                }
            }
        } else if form.compression == Compression::Zstd && self.compression == Choice::Auto {
            if status == StatusCode::UNSUPPORTED_MEDIA_TYPE || status == StatusCode::BAD_REQUEST {
                self.known.zstd = Known::Refused(now_ms);
                judged = Judged::FellBack;
                if !matches!(before.zstd, Known::Refused(_)) {
                    tracing::info!(
                        sink = %self.sink,
                        "the receiver does not take zstd (HTTP {}); sending snappy; trying zstd again in a day",
                        status.as_u16()
                    );
                }
            } else if status.is_success() {
                self.known.zstd = Known::Accepted;
                if before.zstd != Known::Accepted {
                    tracing::info!(sink = %self.sink, "the receiver takes zstd; sending remote-write 1.0 with zstd");
                }
            }
        }
        if self.known != before {
            self.save();
        }
        judged
    }

    fn save(&self) {
        let Some(f) = &self.file else { return };
        // Losing this file only means probing once more after a restart.
        let body = serde_json::to_vec(&self.known).unwrap_or_default();
        if let Err(e) = crate::files::replace_atomically(f, &body, false) {
            tracing::debug!(sink = %self.sink, "cannot remember the negotiated form in {}: {e}", f.display());
        }
    }
}

/// Whether an answer to a 2.0 request says the receiver does not take 2.0. Until 2.0 was
/// once accepted, any 400 counts (the batch is sent again in 1.0, which a receiver refusing
/// the data itself refuses too, so nothing is lost and little is spent); afterwards only a 400
/// about the content type does.
fn refuses_v2(a: &Answer, unproven: bool) -> bool {
    let s = a.status;
    if s == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return true;
    }
    if s == StatusCode::BAD_REQUEST {
        if unproven {
            return true;
        }
        let body = String::from_utf8_lossy(&a.body).to_ascii_lowercase();
        return [
            "content-type",
            "content type",
            "proto",
            "version",
            "media type",
            "unsupported",
        ]
        .iter()
        .any(|w| body.contains(w));
    }
    s.is_success()
        && !V2_WRITTEN_HEADERS
            .iter()
            .any(|h| a.headers.contains_key(*h))
}

fn why_v2(a: &Answer) -> String {
    if a.status.is_success() {
        format!(
            "HTTP {} without X-Prometheus-Remote-Write-Samples-Written: a 1.0 receiver that ignored the body",
            a.status.as_u16()
        )
    } else {
        format!("HTTP {}", a.status.as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: h,
            body: body.as_bytes().to_vec(),
        }
    }

    const V2: Form = Form {
        protocol: Protocol::V2,
        compression: Compression::Snappy,
    };
    const ZSTD: Form = Form {
        protocol: Protocol::V1,
        compression: Compression::Zstd,
    };

    #[test]
    fn auto_tries_v2_then_zstd_then_snappy_and_remembers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("negotiated.json");
        let mut n = Negotiator::new("s", Choice::Auto, Choice::Auto, Some(file.clone()));
        assert_eq!(n.form(0), V2);
        assert_eq!(n.judge(V2, &answer(204, &[], ""), 0), Judged::FellBack);
        assert_eq!(n.form(1), ZSTD);
        assert_eq!(
            n.judge(ZSTD, &answer(415, &[], "snappy only"), 1),
            Judged::FellBack
        );
        assert_eq!(n.form(2), Form::NEUTRAL);
        assert_eq!(
            n.judge(Form::NEUTRAL, &answer(400, &[], "bad"), 2),
            Judged::Stands
        );
        let again = Negotiator::new("s", Choice::Auto, Choice::Auto, Some(file));
        assert_eq!(again.form(3), Form::NEUTRAL, "remembered across restarts");
        assert_eq!(
            again.form(REPROBE_AFTER_MS + 2),
            V2,
            "tried again after a day"
        );
    }

    #[test]
    fn a_v2_receiver_keeps_v2_and_a_data_refusal_is_no_fall_back() {
        let mut n = Negotiator::new("s", Choice::Auto, Choice::Auto, None);
        let ok = answer(
            204,
            &[("x-prometheus-remote-write-samples-written", "3")],
            "",
        );
        assert_eq!(n.judge(V2, &ok, 0), Judged::Stands);
        assert_eq!(n.form(1), V2);
        let out_of_order = answer(400, &[], "out of order sample");
        assert_eq!(n.judge(V2, &out_of_order, 2), Judged::Stands);
        assert_eq!(n.form(3), V2);
        let ctype = answer(400, &[], "unsupported Content-Type");
        assert_eq!(n.judge(V2, &ctype, 4), Judged::FellBack);
        assert_eq!(n.form(5), ZSTD);
        let mut fresh = Negotiator::new("s", Choice::Auto, Choice::Auto, None);
        let odd = answer(400, &[], "missing remote-write headers");
        assert_eq!(
            fresh.judge(V2, &odd, 0),
            Judged::FellBack,
            "any 400 before 2.0 was ever accepted"
        );
    }

    #[test]
    fn fixed_choices_never_change() {
        let mut n = Negotiator::new(
            "s",
            Choice::Fixed(Protocol::V1),
            Choice::Fixed(Compression::Zstd),
            None,
        );
        assert_eq!(n.form(0), ZSTD);
        assert_eq!(n.judge(ZSTD, &answer(415, &[], ""), 0), Judged::Stands);
        assert_eq!(n.form(1), ZSTD);
        let n = Negotiator::new("s", Choice::Fixed(Protocol::V1), Choice::Auto, None);
        assert_eq!(n.form(0), ZSTD);
    }
}
