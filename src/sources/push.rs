//! The shared half of a push-shaped source (see [`Source`](super::Source)): the state its
//! background task accumulates and `collect` reads, and the "ready" signal one-shot commands
//! wait on.
//!
//! The pattern: `start()` spawns a task that owns the connection (an MQTT session, a listening
//! socket), reconnects with backoff, and folds each message into the state with
//! [`Shared::update`]; it calls [`Shared::mark_ready`] after the first message or the first
//! failure. `collect()` takes a consistent view with [`Shared::read`] and returns an error
//! (the relay then reports `up 0`) while the session is down. `ready()` returns
//! [`Shared::ready`].

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// State shared between a push-shaped source's background task and its `collect`.
pub struct Shared<T> {
    state: Arc<Mutex<T>>,
    ready: Arc<watch::Sender<bool>>,
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared {
            state: self.state.clone(),
            ready: self.ready.clone(),
        }
    }
}

impl<T> Shared<T> {
    pub fn new(initial: T) -> Shared<T> {
        Shared {
            state: Arc::new(Mutex::new(initial)),
            ready: Arc::new(watch::channel(false).0),
        }
    }

    /// Changes the state (from the background task). Keep the closure short: `collect` waits.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        // A poisoned lock means the task panicked mid-update; the state is still the best
        // there is.
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reads the state (from `collect`).
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Says there is something worth reporting: the first message, or the first failure.
    pub fn mark_ready(&self) {
        self.ready.send_replace(true);
    }

    /// Resolves once [`Shared::mark_ready`] was called (at once if it already was).
    pub fn ready(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.ready.subscribe();
        async move {
            // An error means every sender is gone: nothing will ever come, so stop waiting.
            let _ = rx.wait_for(|r| *r).await;
        }
    }
}
