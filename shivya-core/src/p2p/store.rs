//! The local DHT key/value store: bounded in entries and in value length.

use super::id::NodeId;
use super::protocol::{StoreStatus, MAX_VALUE_LEN};
use std::collections::BTreeMap;

/// A bounded map from 160-bit keys to byte values.
#[derive(Debug, Clone)]
pub struct DhtStore {
    max_entries: usize,
    max_value_len: usize,
    map: BTreeMap<NodeId, Vec<u8>>,
}

impl DhtStore {
    /// A store of at most `max_entries` values of at most `max_value_len` bytes
    /// (clamped to the wire limit [`MAX_VALUE_LEN`]).
    pub fn new(max_entries: usize, max_value_len: usize) -> DhtStore {
        DhtStore {
            max_entries,
            max_value_len: max_value_len.min(MAX_VALUE_LEN),
            map: BTreeMap::new(),
        }
    }

    /// Stores `value` under `key`. A value over the length limit, or a new key when the
    /// store is full, is refused and nothing changes; replacing an existing key always fits.
    pub fn put(&mut self, key: NodeId, value: &[u8]) -> Result<(), StoreStatus> {
        if value.len() > self.max_value_len {
            return Err(StoreStatus::ValueTooLarge);
        }
        if let Some(v) = self.map.get_mut(&key) {
            v.clear();
            v.extend_from_slice(value);
            return Ok(());
        }
        if self.map.len() >= self.max_entries {
            return Err(StoreStatus::StoreFull);
        }
        self.map.insert(key, value.to_vec());
        Ok(())
    }

    /// The value under `key`.
    pub fn get(&self, key: &NodeId) -> Option<&[u8]> {
        self.map.get(key).map(Vec::as_slice)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Longest value accepted.
    pub fn max_value_len(&self) -> usize {
        self.max_value_len
    }
}
