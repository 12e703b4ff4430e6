//! LZ4 compression of stream and datagram frames (PROTOCOL.md §14.5): the configuration
//! ([`CompressionConfig`], off / on / auto, the size threshold, per-class dictionaries), the
//! dictionaries themselves ([`Dictionary`], with the built-in chat dictionary), the LZ4 block
//! codec wrapper ([`codec`]) and the per-flow policy that decides when compression pays
//! ([`Adaptive`]).
//!
//! Compression is a sender's local choice, frame by frame: a sender only ever uses it towards a
//! peer that advertised the `compression` transport parameter, and only keeps a compressed frame
//! when it is smaller than the plain one would be. Everything here is pure computation: no I/O,
//! no clock.

mod adaptive;
pub mod codec;
mod dictionary;

pub use adaptive::Adaptive;
pub use dictionary::{chat_dictionary, Dictionary, DictionaryId, CHAT_DICTIONARY_V1};

use crate::connection::QosClass;

/// The most bytes one compressed frame may decompress to (PROTOCOL.md §14.5). A receiver
/// rejects larger claims before decompressing, so a small frame cannot make it allocate or work
/// more than this.
pub const MAX_UNCOMPRESSED_FRAME: usize = 64 * 1024;

/// The default smallest piece of data worth trying to compress, in bytes: below it LZ4's
/// headers and the frame's extra length field cost more than it can save.
pub const DEFAULT_MIN_SIZE: usize = 64;

/// When to compress (PROTOCOL.md §14.5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CompressionMode {
    /// Never compress what we send (we still accept compressed frames from the peer).
    Off,
    /// Try every frame of at least `min_size` bytes; keep the result when it is smaller.
    On,
    /// As `On`, but a flow (a stream, or the datagrams) whose data does not compress — media,
    /// encrypted or already-compressed files — stops being tried for a while, and is sampled
    /// again after exponentially growing amounts of data (16 KiB up to 1 MiB).
    #[default]
    Auto,
}

/// Compression settings of one endpoint.
#[derive(Clone, Debug)]
pub struct CompressionConfig {
    /// When to compress what we send.
    pub mode: CompressionMode,
    /// Data shorter than this is never compressed.
    pub min_size: usize,
    /// The dictionary used for each QoS class's streams, indexed by [`QosClass::index`]; also
    /// the dictionaries we can decompress with (advertised to the peer). By default `System`
    /// and `Chat` streams use the built-in chat dictionary, so short chat messages compress.
    pub class_dictionaries: [Option<Dictionary>; 4],
}

impl Default for CompressionConfig {
    fn default() -> Self {
        let chat = chat_dictionary();
        Self {
            mode: CompressionMode::Auto,
            min_size: DEFAULT_MIN_SIZE,
            class_dictionaries: [Some(chat.clone()), Some(chat), None, None],
        }
    }
}

impl CompressionConfig {
    /// Compression off for what we send (compressed frames from the peer are still accepted).
    pub fn off() -> Self {
        Self {
            mode: CompressionMode::Off,
            ..Self::default()
        }
    }

    /// The dictionary configured for `class`.
    pub fn dictionary_for(&self, class: QosClass) -> Option<&Dictionary> {
        self.class_dictionaries
            .get(class.index())
            .and_then(Option::as_ref)
    }

    /// The distinct ids of the configured dictionaries, at most [`MAX_ADVERTISED_DICTIONARIES`].
    pub fn advertised_ids(&self) -> AdvertisedDictionaries {
        let mut out = AdvertisedDictionaries::default();
        for d in self.class_dictionaries.iter().flatten() {
            out.insert(d.id());
        }
        out
    }

    /// Our dictionary with `id`, to decompress with.
    pub fn find(&self, id: DictionaryId) -> Option<&Dictionary> {
        self.class_dictionaries
            .iter()
            .flatten()
            .find(|d| d.id() == id)
    }
}

/// The most dictionary ids the `compression_dictionaries` transport parameter carries.
pub const MAX_ADVERTISED_DICTIONARIES: usize = 4;

/// A short set of dictionary ids (the `compression_dictionaries` transport parameter, §8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdvertisedDictionaries {
    ids: [u32; MAX_ADVERTISED_DICTIONARIES],
    len: u8,
}

impl AdvertisedDictionaries {
    /// Adds `id` unless it is present or the set is full (then it is ignored).
    pub fn insert(&mut self, id: DictionaryId) {
        let len = usize::from(self.len);
        if self.contains(id) || len >= MAX_ADVERTISED_DICTIONARIES {
            return;
        }
        self.ids[len] = id.0;
        self.len += 1;
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: DictionaryId) -> bool {
        self.as_slice().contains(&id.0)
    }

    /// The ids, in insertion order.
    pub fn as_slice(&self) -> &[u32] {
        &self.ids[..usize::from(self.len)]
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_gives_chat_classes_the_builtin_dictionary() {
        let c = CompressionConfig::default();
        assert_eq!(c.mode, CompressionMode::Auto);
        let chat = c.dictionary_for(QosClass::Chat).unwrap();
        assert_eq!(chat.id(), chat_dictionary().id());
        assert!(c.dictionary_for(QosClass::Bulk).is_none());
        assert_eq!(c.advertised_ids().as_slice(), &[chat.id().0]);
        assert!(c.find(chat.id()).is_some());
        assert!(c.find(DictionaryId(7)).is_none());
    }

    #[test]
    fn advertised_set_ignores_repeats_and_overflow() {
        let mut s = AdvertisedDictionaries::default();
        for id in [1, 2, 1, 3, 4, 5] {
            s.insert(DictionaryId(id));
        }
        assert_eq!(s.as_slice(), &[1, 2, 3, 4]);
        assert!(!s.contains(DictionaryId(5)));
    }
}
