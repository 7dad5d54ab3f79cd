//! The MQTT session: connect (TLS on rustls with webpki roots plus `tls.ca_file`), subscribe,
//! feed every message into the shared state, and reconnect with backoff when the session ends.
//!
//! One task per source. Each connection attempt builds a fresh rumqttc event loop (clean
//! session, QoS 0: the server keeps nothing for us between sessions, so there is nothing to
//! resume). A session counts as up once the server acknowledged every subscription; it ends on
//! any error (network, TLS, refused credentials, refused subscription, missed ping). Between
//! attempts the task waits 1 s, 2 s, 4 s … up to 60 s (with jitter), back to 1 s after a session
//! that was up. The first subscription is logged (info); a session going down makes the next
//! `collect` fail with the reason, which the relay logs once ("source down: MQTT session down:
//! …", then "source up again"), so this task logs its transitions at debug level only and the
//! log gets one line per change of state, never one per attempt.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, NetworkOptions, Packet,
    QoS, StateError, SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::TtnDevicesConfig;
use super::payload;
use super::tracker::{Saved, Seen};
use super::uplink::{self, Event as Msg};
use crate::clock::{system_now_ms, WallClock};
use crate::config::TlsConfig;
use crate::sources::StateFile;

/// Largest message accepted (an uplink heard by many gateways, with locations and
/// attributes, is a few KiB); a bigger one ends the session (and is logged).
const MAX_INCOMING: usize = 256 << 10;
/// Largest packet sent (the SUBSCRIBE of a long `devices` list).
const MAX_OUTGOING: usize = 256 << 10;
/// Backoff between connection attempts.
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The MQTT session's state, as `collect` reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Session {
    /// The first connection attempt has not ended yet.
    Starting,
    Up {
        since_ms: i64,
    },
    Down {
        reason: String,
        since_ms: i64,
    },
}

/// What the session task and the source share.
pub struct Inner {
    pub saved: Saved,
    pub session: Session,
    pub state_file: StateFile,
    /// Devices whose unreadable message, or capped payload, was already logged.
    warned: HashSet<String>,
}

/// The shared state, with the signals `ready` and `collect` wait on.
pub struct Shared {
    inner: Mutex<Inner>,
    /// Dates uplinks, sessions and forgetting.
    clock: WallClock,
    /// True after the first message or the first failure.
    ready: watch::Sender<bool>,
    /// True once the first connection attempt ended (up or down).
    settled: watch::Sender<bool>,
}

impl Shared {
    pub fn new(saved: Saved, state_file: StateFile, clock: WallClock) -> Shared {
        Shared {
            clock,
            inner: Mutex::new(Inner {
                saved,
                session: Session::Starting,
                state_file,
                warned: HashSet::new(),
            }),
            ready: watch::channel(false).0,
            settled: watch::channel(false).0,
        }
    }

    /// Wall-clock time now, in ms.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn ready_signal(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    pub fn settled_signal(&self) -> watch::Receiver<bool> {
        self.settled.subscribe()
    }

    fn up(&self, cfg: &TtnDevicesConfig, topics: usize) {
        let mut g = self.lock();
        g.saved.new_epoch();
        match &g.session {
            Session::Down { since_ms, .. } => tracing::debug!(
                source = %cfg.name,
                "MQTT session up again after {}s down",
                (self.now_ms() - since_ms).max(0) / 1000
            ),
            _ => tracing::info!(
                source = %cfg.name,
                "MQTT session up: {} as {}, {topics} topic(s) subscribed",
                cfg.url, cfg.application
            ),
        }
        g.session = Session::Up {
            since_ms: self.now_ms(),
        };
        drop(g);
        self.settled.send_replace(true);
    }

    fn down(&self, cfg: &TtnDevicesConfig, reason: String) {
        let mut g = self.lock();
        let since_ms = match &g.session {
            Session::Up { .. } => {
                tracing::debug!(source = %cfg.name, "MQTT session lost: {reason}; reconnecting with backoff");
                self.now_ms()
            }
            Session::Starting => {
                tracing::debug!(source = %cfg.name, "MQTT session cannot start: {reason}; retrying with backoff");
                self.now_ms()
            }
            Session::Down {
                reason: old,
                since_ms,
            } => {
                if *old != reason {
                    tracing::debug!(source = %cfg.name, "MQTT session still down, now: {reason}");
                }
                *since_ms
            }
        };
        g.session = Session::Down { reason, since_ms };
        drop(g);
        self.settled.send_replace(true);
        self.ready.send_replace(true);
    }

    /// Takes in one published message.
    fn message(&self, cfg: &TtnDevicesConfig, topic: &str, body: &[u8]) {
        let wanted = |id: &str| cfg.devices.is_empty() || cfg.devices.iter().any(|d| d == id);
        let mut g = self.lock();
        let g = &mut *g;
        let now = self.now_ms();
        match uplink::parse(topic, body) {
            Ok(None) => return,
            Ok(Some(Msg::Uplink(u))) => {
                if !wanted(&u.device_id) {
                    return;
                }
                let values = u.decoded.as_ref().map(|d| {
                    let (v, over) =
                        payload::values(d, cfg.decoded_fields.as_deref(), cfg.max_decoded_fields);
                    if over > 0 && g.warned.insert(format!("cap/{}", u.device_id)) {
                        tracing::warn!(
                            source = %cfg.name,
                            "device {} sends {} sensor values; exporting the first {} (max_decoded_fields)",
                            u.device_id, over + v.len(), v.len()
                        );
                    }
                    v
                });
                let seen = g.saved.uplink(&u, values, cfg.max_decoded_fields, now);
                match seen {
                    Seen::TooMany if g.warned.insert("too-many".into()) => tracing::warn!(
                        source = %cfg.name,
                        "more than {} devices: uplinks of new devices are ignored (use `devices` to choose)",
                        super::tracker::MAX_DEVICES
                    ),
                    Seen::Counted { lost, missed } if lost + missed > 0 => tracing::debug!(
                        source = %cfg.name,
                        "device {}: f_cnt {} after a gap ({lost} lost, {missed} missed while not listening)",
                        u.device_id, u.f_cnt
                    ),
                    _ => {}
                }
            }
            Ok(Some(Msg::Join(j))) => {
                if wanted(&j.device_id) && g.saved.join(&j, now) {
                    tracing::debug!(source = %cfg.name, "device {} joined", j.device_id);
                }
            }
            Err(e) => {
                g.saved.invalid_messages += 1;
                let device = uplink::topic_parts(topic).map_or(topic, |(d, _)| d);
                if g.warned.len() < 10_000 && g.warned.insert(format!("bad/{device}")) {
                    tracing::warn!(
                        source = %cfg.name,
                        "unreadable message on {topic}: {e}; skipped (further ones from this device are counted in ttn_devices_invalid_messages_total)"
                    );
                }
            }
        }
        self.ready.send_replace(true);
    }
}

/// A client ID unique to this process and session (the same ID twice makes the server drop
/// the older connection: a `print` must not kick the running daemon off). 22 characters, within
/// MQTT 3.1.1's guaranteed 23.
fn client_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_i64(system_now_ms());
    format!("pushrelay-{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// The topics to subscribe: every device's `up` and `join`, or only the listed devices'.
pub fn topics(cfg: &TtnDevicesConfig) -> Vec<String> {
    let base = format!("v3/{}/devices", cfg.application);
    let ids: Vec<&str> = if cfg.devices.is_empty() {
        vec!["+"]
    } else {
        cfg.devices.iter().map(String::as_str).collect()
    };
    ids.iter()
        .flat_map(|id| [format!("{base}/{id}/up"), format!("{base}/{id}/join")])
        .collect()
}

/// The rustls client configuration: the ring provider, webpki's roots plus `ca_file`.
pub fn tls_config(tls: &TlsConfig) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    if tls.insecure_skip_verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth());
    }
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = &tls.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| anyhow::anyhow!("cannot read ca_file {}: {e}", ca.display()))?;
        let mut n = 0;
        use rustls::pki_types::pem::PemObject;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| anyhow::anyhow!("ca_file {}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| anyhow::anyhow!("ca_file {}: {e}", ca.display()))?;
            n += 1;
        }
        if n == 0 {
            anyhow::bail!("ca_file {} holds no PEM certificate", ca.display());
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `tls.insecure_skip_verify`: any certificate is accepted (signatures are still checked).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Runs sessions until `cancel` fires.
pub async fn run(cfg: Arc<TtnDevicesConfig>, shared: Arc<Shared>, cancel: CancellationToken) {
    let tls = if cfg.is_tls() {
        match tls_config(&cfg.tls) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                // A configuration problem no retry can fix: report it and stay down.
                shared.down(&cfg, format!("TLS set-up failed: {e:#}"));
                cancel.cancelled().await;
                return;
            }
        }
    } else {
        None
    };
    use backon::BackoffBuilder;
    let schedule = || {
        crate::sinks::Backoff {
            min: MIN_BACKOFF,
            max: MAX_BACKOFF,
        }
        .builder()
        .build()
    };
    let mut delays = schedule();
    loop {
        let (reason, was_up) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = session(&cfg, tls.clone(), &shared) => r,
        };
        shared.down(&cfg, reason);
        if was_up {
            delays = schedule();
        }
        let wait = delays.next().unwrap_or(MAX_BACKOFF);
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One session, from connecting to its end: the reason it ended, and whether it was up.
async fn session(
    cfg: &TtnDevicesConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    shared: &Shared,
) -> (String, bool) {
    let mut opts = MqttOptions::new(client_id(), cfg.host(), cfg.port());
    opts.set_credentials(cfg.application.clone(), cfg.api_key.expose().to_string())
        .set_keep_alive(cfg.keep_alive)
        .set_clean_session(true)
        .set_max_packet_size(MAX_INCOMING, MAX_OUTGOING);
    if let Some(t) = tls {
        opts.set_transport(Transport::Tls(TlsConfiguration::Rustls(t)));
    }
    let (client, mut events) = AsyncClient::new(opts, 8);
    let mut net = NetworkOptions::new();
    net.set_connection_timeout(cfg.timeout.as_secs().max(1));
    events.set_network_options(net);
    let topics = topics(cfg);
    let mut up = false;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let filters = topics
                    .iter()
                    .map(|t| SubscribeFilter::new(t.clone(), QoS::AtMostOnce));
                if let Err(e) = client.try_subscribe_many(filters) {
                    return (format!("cannot subscribe: {e}"), up);
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if let Some(i) = ack
                    .return_codes
                    .iter()
                    .position(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    return (
                        format!(
                            "the MQTT server refused the subscription to {}: check that `application` ({}) is the application the API key belongs to, and that the key has the right to read application traffic",
                            topics.get(i).map_or("?", String::as_str),
                            cfg.application
                        ),
                        up,
                    );
                }
                up = true;
                shared.up(cfg, topics.len());
            }
            Ok(Event::Incoming(Packet::Publish(p))) => shared.message(cfg, &p.topic, &p.payload),
            Ok(Event::Incoming(Packet::Disconnect)) => {
                return ("the MQTT server closed the session".to_string(), up)
            }
            Ok(_) => {}
            Err(e) => return (describe(&e, cfg), up),
        }
    }
}

/// A connection error as one log-worthy sentence (never with the API key).
pub fn describe(e: &ConnectionError, cfg: &TtnDevicesConfig) -> String {
    let at = format!("{}:{}", cfg.host(), cfg.port());
    match e {
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
        ) => format!(
            "the MQTT server at {at} refused user {} with the API key ({code:?}): check `application` (<application id>@<tenant id>, e.g. app1@ttn) and that `api_key` is an API key of that application with the right to read application traffic",
            cfg.application
        ),
        ConnectionError::ConnectionRefused(code) => {
            format!("the MQTT server at {at} refused the connection ({code:?})")
        }
        ConnectionError::NetworkTimeout => format!(
            "no answer from {at} within {}s",
            cfg.timeout.as_secs().max(1)
        ),
        ConnectionError::FlushTimeout => format!("sending to {at} timed out"),
        ConnectionError::Tls(t) => {
            let hint = if cfg.tls.ca_file.is_none() {
                " (a private CA needs tls.ca_file)"
            } else {
                ""
            };
            format!("TLS with {at} failed: {}{hint}", crate::http::client::error_chain(t))
        }
        ConnectionError::Io(io) => match io.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                format!("the MQTT server at {at} closed the connection")
            }
            _ => format!("cannot reach {at}: {io}"),
        },
        ConnectionError::MqttState(StateError::AwaitPingResp) => {
            format!("the MQTT server at {at} stopped answering (no ping response)")
        }
        ConnectionError::MqttState(StateError::Io(io)) => match io.kind() {
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
                format!("the MQTT server at {at} closed the connection")
            }
            _ => format!("connection to {at} failed: {io}"),
        },
        ConnectionError::MqttState(StateError::ConnectionAborted) => {
            format!("the MQTT server at {at} closed the connection")
        }
        ConnectionError::MqttState(StateError::Deserialization(d)) => {
            format!("unreadable packet from {at} ({d}; the limit is {} KiB)", MAX_INCOMING >> 10)
        }
        other => format!("MQTT session with {at} failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_differ_and_fit_mqtt_311() {
        let (a, b) = (client_id(), client_id());
        assert_ne!(a, b);
        assert!(a.len() <= 23 && a.starts_with("pushrelay-"), "{a}");
    }

    #[test]
    fn tls_configs_build() {
        assert!(tls_config(&TlsConfig::default()).is_ok());
        assert!(tls_config(&TlsConfig {
            ca_file: None,
            insecure_skip_verify: true
        })
        .is_ok());
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("ca.pem");
        std::fs::write(&p, "not a certificate").unwrap();
        let e = tls_config(&TlsConfig {
            ca_file: Some(p),
            insecure_skip_verify: false,
        })
        .unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
    }
}
