//! A minimal in-process MQTT 3.1.1 broker, so `pushrelay demo` runs on a fresh machine with no
//! mosquitto: CONNECT/CONNACK with a user name and password, SUBSCRIBE/SUBACK with `+` and `#`
//! filters, UNSUBSCRIBE, PUBLISH at QoS 0 (QoS 1 from clients is acknowledged and delivered at
//! QoS 0, as The Things Stack does), PINGREQ/PINGRESP, DISCONNECT, and the keep-alive rule
//! (a client silent for 1.5 × its keep-alive is dropped).
//!
//! Like The Things Stack's MQTT server, a user may only subscribe under `v3/<user>/…` (a
//! SUBACK failure otherwise). [`Broker::publish`] is how a simulated application server feeds
//! it; [`Broker::drop_clients`] cuts every connection (a broker restart, as clients see it).
//! The integration tests use Debian's real mosquitto instead.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Largest packet accepted from a client.
const MAX_PACKET: usize = 1 << 20;
/// Messages queued per client before further ones are dropped (QoS 0: the broker may).
const QUEUE: usize = 1024;

/// What the broker knows.
#[derive(Default)]
struct State {
    /// user → password.
    users: HashMap<String, String>,
    clients: HashMap<u64, Client>,
    next_id: u64,
    /// Messages handed to [`Broker::publish`].
    published: u64,
}

struct Client {
    filters: Vec<String>,
    tx: mpsc::Sender<Vec<u8>>,
    kill: CancellationToken,
}

/// A running broker on 127.0.0.1.
pub struct Broker {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Broker {
    /// Starts a broker accepting `users` (name, password), until `cancel` fires.
    pub async fn start(
        cancel: CancellationToken,
        users: &[(&str, &str)],
    ) -> anyhow::Result<Broker> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            ..Default::default()
        }));
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    _ = cancel.cancelled() => return,
                    c = listener.accept() => c,
                };
                if let Ok((stream, _)) = conn {
                    tokio::spawn(serve(stream, st.clone(), cancel.clone()));
                }
            }
        });
        Ok(Broker { addr, state })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers a message at QoS 0 to every subscriber whose filter matches; returns how many.
    pub fn publish(&self, topic: &str, payload: &[u8]) -> usize {
        let packet = publish_packet(topic, payload);
        let mut g = self.lock();
        g.published += 1;
        let mut n = 0;
        for c in g.clients.values() {
            if c.filters.iter().any(|f| matches(f, topic)) && c.tx.try_send(packet.clone()).is_ok()
            {
                n += 1;
            }
        }
        n
    }

    /// Messages handed to [`Broker::publish`] so far.
    pub fn published(&self) -> u64 {
        self.lock().published
    }

    /// Subscribed clients right now.
    pub fn subscribers(&self) -> usize {
        self.lock()
            .clients
            .values()
            .filter(|c| !c.filters.is_empty())
            .count()
    }

    /// Cuts every client's connection (they see the broker go away and come back).
    pub fn drop_clients(&self) {
        for c in self.lock().clients.values() {
            c.kill.cancel();
        }
    }

    /// Changes a user's password (existing sessions stay).
    pub fn set_password(&self, user: &str, password: &str) {
        self.lock()
            .users
            .insert(user.to_string(), password.to_string());
    }
}

/// Whether a topic filter (`+` one level, `#` the rest) matches a topic.
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Appends MQTT's variable-length "remaining length".
fn put_len(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            return;
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A QoS 0 PUBLISH packet.
pub fn publish_packet(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(topic.len() + payload.len() + 2);
    put_str(&mut body, topic.as_bytes());
    body.extend_from_slice(payload);
    let mut p = vec![0x30];
    put_len(&mut p, body.len());
    p.extend_from_slice(&body);
    p
}

/// Reads one packet: its first byte and its body.
async fn read_packet<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(u8, Vec<u8>)> {
    let first = r.read_u8().await?;
    let mut len = 0usize;
    for i in 0..4 {
        let b = r.read_u8().await?;
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            break;
        }
        if i == 3 {
            return Err(std::io::Error::other("malformed remaining length"));
        }
    }
    if len > MAX_PACKET {
        return Err(std::io::Error::other("packet too large"));
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    Ok((first, body))
}

/// A cursor over a packet body.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        if self.0.len() < n {
            return None;
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(s)
    }
    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

/// What a CONNECT says: user name, password, keep-alive (seconds).
struct Connect {
    user: Option<String>,
    password: Option<Vec<u8>>,
    keep_alive: u16,
}

/// Reads a CONNECT; `Err` with the CONNACK code refusing it.
fn read_connect(body: &[u8]) -> Result<Connect, u8> {
    let mut b = Body(body);
    let proto = b.text().ok_or(2u8)?;
    let level = b.u8().ok_or(2u8)?;
    if !((proto == "MQTT" && level == 4) || (proto == "MQIsdp" && level == 3)) {
        return Err(1); // unacceptable protocol version
    }
    let flags = b.u8().ok_or(2u8)?;
    let keep_alive = b.u16().ok_or(2u8)?;
    let _client_id = b.bytes().ok_or(2u8)?;
    if flags & 0x04 != 0 {
        b.bytes().ok_or(2u8)?; // will topic
        b.bytes().ok_or(2u8)?; // will message
    }
    let user = if flags & 0x80 != 0 {
        Some(b.text().ok_or(2u8)?)
    } else {
        None
    };
    let pass = if flags & 0x40 != 0 {
        Some(b.bytes().ok_or(2u8)?.to_vec())
    } else {
        None
    };
    Ok(Connect {
        user,
        password: pass,
        keep_alive,
    })
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>, cancel: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let lock = || state.lock().unwrap_or_else(|p| p.into_inner());
    // CONNECT first, within 10 s.
    let first = tokio::time::timeout(Duration::from_secs(10), read_packet(&mut stream)).await;
    let Ok(Ok((0x10, body))) = first else {
        return;
    };
    let (user, keep_alive) = match read_connect(&body) {
        Ok(Connect {
            user: Some(u),
            password: Some(p),
            keep_alive: ka,
        }) => {
            let ok = lock()
                .users
                .get(&u)
                .is_some_and(|want| want.as_bytes() == p.as_slice());
            if !ok {
                let _ = stream.write_all(&[0x20, 2, 0, 4]).await;
                return;
            }
            (u, ka)
        }
        Ok(_) => {
            let _ = stream.write_all(&[0x20, 2, 0, 5]).await;
            return;
        }
        Err(code) => {
            let _ = stream.write_all(&[0x20, 2, 0, code]).await;
            return;
        }
    };
    if stream.write_all(&[0x20, 2, 0, 0]).await.is_err() {
        return;
    }
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let kill = cancel.child_token();
    let id = {
        let mut g = lock();
        g.next_id += 1;
        let id = g.next_id;
        g.clients.insert(
            id,
            Client {
                filters: Vec::new(),
                tx: tx.clone(),
                kill: kill.clone(),
            },
        );
        id
    };
    let idle = if keep_alive == 0 {
        Duration::from_secs(24 * 3600)
    } else {
        Duration::from_millis(u64::from(keep_alive) * 1500)
    };
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            if wr.write_all(&p).await.is_err() {
                return;
            }
        }
    });
    loop {
        let packet = tokio::select! {
            _ = kill.cancelled() => break,
            p = tokio::time::timeout(idle, read_packet(&mut rd)) => p,
        };
        let Ok(Ok((first, body))) = packet else {
            break;
        };
        let reply = match first >> 4 {
            8 => {
                // SUBSCRIBE: packet id, then (filter, qos) pairs.
                let mut b = Body(&body);
                let Some(pid) = b.u16() else { break };
                let mut codes = Vec::new();
                let mut granted = Vec::new();
                while !b.0.is_empty() {
                    let (Some(f), Some(_qos)) = (b.text(), b.u8()) else {
                        break;
                    };
                    let allowed = f.starts_with(&format!("v3/{user}/"));
                    codes.push(if allowed { 0x00 } else { 0x80 });
                    if allowed {
                        granted.push(f);
                    }
                }
                if let Some(c) = lock().clients.get_mut(&id) {
                    c.filters.extend(granted);
                }
                let mut p = vec![0x90];
                put_len(&mut p, 2 + codes.len());
                p.extend_from_slice(&pid.to_be_bytes());
                p.extend_from_slice(&codes);
                Some(p)
            }
            10 => {
                // UNSUBSCRIBE
                let mut b = Body(&body);
                let Some(pid) = b.u16() else { break };
                let mut gone = Vec::new();
                while let Some(f) = b.text() {
                    gone.push(f);
                }
                if let Some(c) = lock().clients.get_mut(&id) {
                    c.filters.retain(|f| !gone.contains(f));
                }
                Some(vec![0xb0, 2, (pid >> 8) as u8, pid as u8])
            }
            3 => {
                // PUBLISH from a client: delivered on at QoS 0; QoS 1 is acknowledged.
                let mut b = Body(&body);
                let Some(topic) = b.text() else { break };
                let qos = (first >> 1) & 3;
                let pid = if qos > 0 { b.u16() } else { None };
                let packet = publish_packet(&topic, b.0);
                for c in lock().clients.values() {
                    if c.filters.iter().any(|f| matches(f, &topic)) {
                        let _ = c.tx.try_send(packet.clone());
                    }
                }
                pid.map(|p| vec![0x40, 2, (p >> 8) as u8, p as u8])
            }
            12 => Some(vec![0xd0, 0]), // PINGREQ → PINGRESP
            14 => break,               // DISCONNECT
            _ => break,                // anything else is a protocol violation
        };
        if let Some(p) = reply {
            if tx.send(p).await.is_err() {
                break;
            }
        }
    }
    lock().clients.remove(&id);
    drop(tx);
    writer.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters() {
        assert!(matches(
            "v3/app@ttn/devices/+/up",
            "v3/app@ttn/devices/d1/up"
        ));
        assert!(!matches(
            "v3/app@ttn/devices/+/up",
            "v3/app@ttn/devices/d1/join"
        ));
        assert!(!matches(
            "v3/app@ttn/devices/+/up",
            "v3/app@ttn/devices/d1/up/x"
        ));
        assert!(matches("v3/app@ttn/#", "v3/app@ttn/devices/d1/down/sent"));
        assert!(matches("#", "x"));
        assert!(!matches("v3/a/+", "v3/a"));
    }

    #[test]
    fn lengths() {
        for n in [0usize, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152] {
            let mut v = Vec::new();
            put_len(&mut v, n);
            let got = v
                .iter()
                .enumerate()
                .fold(0usize, |a, (i, b)| a | (usize::from(b & 0x7f) << (7 * i)));
            assert_eq!(got, n);
        }
    }
}
