//! The bounded send queue of one peer, and its slow-peer policy (docs/p2p.md, "Slow peers").
//!
//! Two lanes: a small control lane (pings, pongs, peer lists) that always goes first, and
//! the data lane bounded by `peer_queue_messages` and `peer_queue_bytes`. When the data lane
//! is full, the oldest [`Priority::Bulk`] messages are evicted to make room; if everything
//! queued is [`Priority::Critical`], the push fails and the caller decides: `send` waits
//! (backpressure) up to a deadline, `broadcast` and a timed-out `send` disconnect the peer
//! as too slow. It will be redialled, and consensus recovers what it missed through its
//! own retransmission and sync.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::wire::RecordKind;

/// Most control records waiting; past it new ones are dropped (a peer that does not read
/// its pongs will time out on pings anyway).
pub const CONTROL_QUEUE_MESSAGES: usize = 64;

/// How a message may be treated when its peer's queue is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Priority {
    /// Never dropped while the connection lives (consensus votes, proposals).
    #[default]
    Critical,
    /// May be evicted, oldest first, to make room (gossip, sync responses that are
    /// re-requested on loss).
    Bulk,
}

#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    pub kind: RecordKind,
    pub tag: u8,
    pub payload: Bytes,
    pub priority: Priority,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// Queued; `evicted` bulk messages were dropped to make room.
    Queued { evicted: usize },
    /// A bulk message found no room and was dropped.
    DroppedBulk,
    /// Full of critical messages: the message was not queued.
    Full,
    /// The connection is closing.
    Closed,
}

#[derive(Debug, Default)]
struct State {
    control: VecDeque<Outgoing>,
    data: VecDeque<Outgoing>,
    data_bytes: usize,
    closed: bool,
}

#[derive(Debug)]
pub(crate) struct PeerQueue {
    state: Mutex<State>,
    max_messages: usize,
    max_bytes: usize,
    /// Wakes the single writer.
    items: Notify,
    /// Wakes senders waiting for room.
    space: Notify,
}

impl PeerQueue {
    pub fn new(max_messages: usize, max_bytes: usize) -> PeerQueue {
        PeerQueue {
            state: Mutex::new(State::default()),
            max_messages,
            max_bytes,
            items: Notify::new(),
            space: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn push_control(&self, message: Outgoing) -> bool {
        let mut state = self.lock();
        if state.closed || state.control.len() >= CONTROL_QUEUE_MESSAGES {
            return false;
        }
        let was_idle = state.control.is_empty() && state.data.is_empty();
        state.control.push_back(message);
        drop(state);
        if was_idle {
            self.items.notify_one();
        }
        true
    }

    pub fn push(&self, message: Outgoing) -> Push {
        self.try_push(message).unwrap_or(Push::Full)
    }

    /// As [`push`](Self::push), but a message that found the queue full of critical
    /// messages is handed back (`Err`) instead of dropped, so the caller can wait with it.
    pub fn try_push(&self, message: Outgoing) -> Result<Push, Outgoing> {
        let mut state = self.lock();
        if state.closed {
            return Ok(Push::Closed);
        }
        let size = message.payload.len();
        let fits = |state: &State| {
            state.data.len() < self.max_messages && state.data_bytes + size <= self.max_bytes
        };
        let mut evicted = 0;
        while !fits(&state) {
            let Some(index) = state.data.iter().position(|m| m.priority == Priority::Bulk) else {
                break;
            };
            if let Some(old) = state.data.remove(index) {
                state.data_bytes -= old.payload.len();
                evicted += 1;
            }
        }
        if !fits(&state) {
            return if message.priority == Priority::Bulk {
                Ok(Push::DroppedBulk)
            } else {
                Err(message)
            };
        }
        // The writer only sleeps after seeing both lanes empty under the lock, so waking it
        // on the empty-to-non-empty transition is enough (notify_one keeps a permit).
        let was_idle = state.control.is_empty() && state.data.is_empty();
        state.data_bytes += size;
        state.data.push_back(message);
        drop(state);
        if was_idle {
            self.items.notify_one();
        }
        Ok(Push::Queued { evicted })
    }

    /// Waits until pushing `message` succeeds or the queue closes. The caller bounds the
    /// wait with a timeout.
    pub async fn push_wait(&self, mut message: Outgoing) -> Push {
        loop {
            let mut space = pin!(self.space.notified());
            space.as_mut().enable();
            match self.try_push(message) {
                Err(back) => {
                    message = back;
                    space.await;
                }
                Ok(push) => return push,
            }
        }
    }

    /// Takes up to `max_messages` messages (control first) totalling about `max_bytes`,
    /// waiting for at least one. `false` once the queue is closed.
    pub async fn next_batch(
        &self,
        out: &mut Vec<Outgoing>,
        max_messages: usize,
        max_bytes: usize,
    ) -> bool {
        loop {
            {
                let mut state = self.lock();
                if state.closed {
                    return false;
                }
                let mut bytes = 0;
                while out.len() < max_messages {
                    let Some(message) = state.control.pop_front() else {
                        break;
                    };
                    bytes += message.payload.len();
                    out.push(message);
                }
                let mut took_data = false;
                while out.len() < max_messages && (out.is_empty() || bytes < max_bytes) {
                    let Some(front) = state.data.front() else {
                        break;
                    };
                    if !out.is_empty() && bytes + front.payload.len() > max_bytes {
                        break;
                    }
                    let Some(message) = state.data.pop_front() else {
                        break;
                    };
                    state.data_bytes -= message.payload.len();
                    bytes += message.payload.len();
                    out.push(message);
                    took_data = true;
                }
                if took_data {
                    self.space.notify_waiters();
                }
                if !out.is_empty() {
                    return true;
                }
            }
            self.items.notified().await;
        }
    }

    pub fn is_empty(&self) -> bool {
        let state = self.lock();
        state.control.is_empty() && state.data.is_empty()
    }

    pub fn len(&self) -> usize {
        self.lock().data.len()
    }

    /// Closes the queue: the writer stops, waiting senders return [`Push::Closed`].
    /// Returns how many data messages were still queued (dropped).
    pub fn close(&self) -> usize {
        let mut state = self.lock();
        state.closed = true;
        let dropped = state.data.len();
        state.data.clear();
        state.control.clear();
        state.data_bytes = 0;
        drop(state);
        self.items.notify_one();
        self.space.notify_waiters();
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(priority: Priority, size: usize) -> Outgoing {
        Outgoing {
            kind: RecordKind::Data,
            tag: 0,
            payload: Bytes::from(vec![0u8; size]),
            priority,
        }
    }

    #[test]
    fn full_queue_evicts_oldest_bulk_then_refuses_critical() {
        let queue = PeerQueue::new(3, 1 << 20);
        assert_eq!(
            queue.push(message(Priority::Bulk, 1)),
            Push::Queued { evicted: 0 }
        );
        assert_eq!(
            queue.push(message(Priority::Critical, 1)),
            Push::Queued { evicted: 0 }
        );
        assert_eq!(
            queue.push(message(Priority::Critical, 1)),
            Push::Queued { evicted: 0 }
        );
        assert_eq!(
            queue.push(message(Priority::Critical, 1)),
            Push::Queued { evicted: 1 }
        );
        assert_eq!(queue.push(message(Priority::Critical, 1)), Push::Full);
        assert_eq!(queue.push(message(Priority::Bulk, 1)), Push::DroppedBulk);
        assert_eq!(queue.len(), 3);
    }

    #[test]
    fn byte_bound_applies() {
        let queue = PeerQueue::new(100, 10);
        assert_eq!(
            queue.push(message(Priority::Critical, 6)),
            Push::Queued { evicted: 0 }
        );
        assert_eq!(queue.push(message(Priority::Critical, 6)), Push::Full);
    }

    #[tokio::test]
    async fn batches_take_control_first_and_respect_limits() {
        let queue = PeerQueue::new(100, 1 << 20);
        for _ in 0..5 {
            queue.push(message(Priority::Critical, 10));
        }
        queue.push_control(Outgoing {
            kind: RecordKind::Ping,
            tag: 0,
            payload: Bytes::from_static(&[0; 8]),
            priority: Priority::Critical,
        });
        let mut out = Vec::new();
        assert!(queue.next_batch(&mut out, 3, 1 << 20).await);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].kind, RecordKind::Ping);
        out.clear();
        assert!(queue.next_batch(&mut out, 100, 15).await);
        assert_eq!(out.len(), 1);
        queue.close();
        out.clear();
        assert!(!queue.next_batch(&mut out, 100, 15).await);
    }
}
