//! Frames waiting to be sent. A body that goes to several peers is built once, and each
//! frame is encoded into the caller's buffer only when it is polled, so draining the
//! outbox allocates nothing.

use crate::p2p::Frame;
use std::collections::VecDeque;
use std::net::SocketAddr;

/// Queued frames, in the order they were queued.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outbox {
    /// Bodies queued since the outbox was last empty.
    frames: Vec<Frame>,
    /// `(destination, index into frames)`, oldest first.
    queue: VecDeque<(SocketAddr, usize)>,
}

impl Outbox {
    /// Queues `frame` for one peer.
    pub fn push(&mut self, to: SocketAddr, frame: Frame) {
        self.push_to(std::iter::once(to), frame);
    }

    /// Queues one `frame` for every address in `to` (nothing when `to` is empty).
    pub fn push_to(&mut self, to: impl IntoIterator<Item = SocketAddr>, frame: Frame) {
        if self.queue.is_empty() {
            self.frames.clear();
        }
        let k = self.frames.len();
        let before = self.queue.len();
        self.queue.extend(to.into_iter().map(|addr| (addr, k)));
        if self.queue.len() > before {
            self.frames.push(frame);
        }
    }

    /// The next frame and its destination.
    pub fn pop(&mut self) -> Option<(SocketAddr, &Frame)> {
        while let Some((to, k)) = self.queue.pop_front() {
            // Always true: indices point into `frames`, which is only cleared when the
            // queue is empty.
            if k < self.frames.len() {
                return Some((to, &self.frames[k]));
            }
        }
        None
    }
}
