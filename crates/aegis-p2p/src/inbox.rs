//! The inbox: messages from all peers to the engine, bounded in messages and bytes.
//!
//! Readers append a whole frame's messages under one lock; the receiver takes everything
//! queued in one swap and hands it out without locking. So a batch of small messages costs
//! one lock and at most one wake-up on each side, not one per message. When the inbox is
//! over either bound, readers wait (and TCP pushes back on the senders); a reader may
//! overshoot by one frame, so memory stays below the bounds plus `max_peers` frames.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::network::Inbound;

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Inbound>,
    bytes: usize,
    receiver_alive: bool,
    closed: bool,
}

#[derive(Debug)]
pub(crate) struct InboxShared {
    state: Mutex<State>,
    max_messages: usize,
    max_bytes: usize,
    items: Notify,
    space: Notify,
}

/// What became of a pushed batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Delivered {
    Yes,
    /// The [`Inbox`] was dropped: the messages were discarded.
    NoReceiver,
    /// The connection was cancelled while waiting for room.
    Cancelled,
}

impl InboxShared {
    pub fn new(max_messages: usize, max_bytes: usize) -> Arc<InboxShared> {
        Arc::new(InboxShared {
            state: Mutex::new(State {
                receiver_alive: true,
                ..State::default()
            }),
            max_messages,
            max_bytes,
            items: Notify::new(),
            space: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends `batch` (emptying it), waiting while the inbox is over its bounds.
    pub async fn push_all(
        &self,
        batch: &mut Vec<Inbound>,
        cancel: &CancellationToken,
    ) -> Delivered {
        if batch.is_empty() {
            return Delivered::Yes;
        }
        loop {
            let mut space = pin!(self.space.notified());
            space.as_mut().enable();
            {
                let mut state = self.lock();
                if !state.receiver_alive {
                    batch.clear();
                    return Delivered::NoReceiver;
                }
                if state.queue.len() < self.max_messages && state.bytes < self.max_bytes {
                    let was_empty = state.queue.is_empty();
                    for message in batch.drain(..) {
                        state.bytes += message.payload.len();
                        state.queue.push_back(message);
                    }
                    drop(state);
                    if was_empty {
                        self.items.notify_one();
                    }
                    return Delivered::Yes;
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return Delivered::Cancelled,
                () = space => {}
            }
        }
    }

    /// After shutdown the receiver gets what is queued, then `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.items.notify_one();
    }
}

/// The stream of messages received from authenticated validators, in order per peer.
#[derive(Debug)]
pub struct Inbox {
    shared: Arc<InboxShared>,
    local: VecDeque<Inbound>,
}

impl Inbox {
    pub(crate) fn new(shared: Arc<InboxShared>) -> Inbox {
        Inbox {
            shared,
            local: VecDeque::new(),
        }
    }

    /// The next message; `None` once the network has shut down and everything was read.
    pub async fn recv(&mut self) -> Option<Inbound> {
        loop {
            if let Some(message) = self.local.pop_front() {
                return Some(message);
            }
            let mut items = pin!(self.shared.items.notified());
            items.as_mut().enable();
            match refill(&self.shared, &mut self.local) {
                (true, _) => continue,
                (false, true) => return None,
                (false, false) => items.await,
            }
        }
    }

    /// The next message if one is waiting.
    pub fn try_recv(&mut self) -> Option<Inbound> {
        if self.local.is_empty() {
            refill(&self.shared, &mut self.local);
        }
        self.local.pop_front()
    }

    /// Messages waiting (locally and in the shared queue).
    pub fn len(&self) -> usize {
        self.local.len() + self.shared.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Moves everything queued to `local` (which is empty). Returns (moved any, closed).
fn refill(shared: &InboxShared, local: &mut VecDeque<Inbound>) -> (bool, bool) {
    let mut state = shared.lock();
    if state.queue.is_empty() {
        return (false, state.closed);
    }
    std::mem::swap(local, &mut state.queue);
    state.bytes = 0;
    drop(state);
    shared.space.notify_waiters();
    (true, false)
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiver_alive = false;
        state.queue.clear();
        state.bytes = 0;
        drop(state);
        self.shared.space.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aegis_types::{PublicKey, ValidatorId};
    use bytes::Bytes;
    use std::time::Duration;

    fn message(n: u8, size: usize) -> Inbound {
        Inbound {
            from: ValidatorId(0),
            public_key: PublicKey([0; 32]),
            tag: n,
            payload: Bytes::from(vec![n; size]),
        }
    }

    #[tokio::test]
    async fn delivers_in_order_and_applies_backpressure() {
        let shared = InboxShared::new(2, 1 << 20);
        let mut inbox = Inbox::new(Arc::clone(&shared));
        let cancel = CancellationToken::new();
        let mut batch = vec![message(1, 1), message(2, 1)];
        assert_eq!(shared.push_all(&mut batch, &cancel).await, Delivered::Yes);
        // Full: the next push waits until the receiver takes the queue.
        let mut more = vec![message(3, 1)];
        let pusher = {
            let shared = Arc::clone(&shared);
            let cancel = cancel.clone();
            tokio::spawn(async move { shared.push_all(&mut more, &cancel).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!pusher.is_finished());
        assert_eq!(inbox.recv().await.unwrap().tag, 1);
        assert_eq!(pusher.await.unwrap(), Delivered::Yes);
        assert_eq!(inbox.recv().await.unwrap().tag, 2);
        assert_eq!(inbox.recv().await.unwrap().tag, 3);
        shared.close();
        assert!(inbox.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_dropped_inbox_discards_instead_of_blocking() {
        let shared = InboxShared::new(1, 1);
        drop(Inbox::new(Arc::clone(&shared)));
        let mut batch = vec![message(1, 10), message(2, 10)];
        let cancel = CancellationToken::new();
        assert_eq!(
            shared.push_all(&mut batch, &cancel).await,
            Delivered::NoReceiver
        );
        assert_eq!(
            shared.push_all(&mut vec![message(3, 1)], &cancel).await,
            Delivered::NoReceiver
        );
    }
}
