//! Compression dictionaries (PROTOCOL.md §14.5): [`Dictionary`] and its [`DictionaryId`] (the
//! FNV-1a hash of its bytes, so two endpoints configured with different bytes never mistake one
//! for the other), and the built-in chat dictionary, which makes short chat messages and the JSON
//! envelopes around them compress: LZ4 alone gains nothing on 100-byte messages.

use std::sync::Arc;

/// The most bytes a dictionary may have: LZ4 matches reach back at most 64 KiB.
pub const MAX_DICTIONARY_LEN: usize = 64 * 1024;

/// Names a dictionary on the wire: the 32-bit FNV-1a hash of its bytes (never 0; 0 means "no
/// dictionary").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DictionaryId(pub u32);

impl DictionaryId {
    /// "No dictionary".
    pub const NONE: DictionaryId = DictionaryId(0);

    /// The id of a dictionary with these bytes (PROTOCOL.md §14.5).
    pub fn of(bytes: &[u8]) -> Self {
        let mut h: u32 = 0x811c_9dc5;
        for &b in bytes {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        DictionaryId(if h == 0 { 1 } else { h })
    }
}

/// A dictionary that both endpoints hold, shared cheaply between connections.
#[derive(Clone, PartialEq, Eq)]
pub struct Dictionary {
    id: DictionaryId,
    bytes: Arc<[u8]>,
}

impl core::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Dictionary")
            .field("id", &format_args!("{:#010x}", self.id.0))
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// A dictionary that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DictionaryError {
    /// No bytes.
    #[error("a compression dictionary cannot be empty")]
    Empty,
    /// More than [`MAX_DICTIONARY_LEN`] bytes.
    #[error("a compression dictionary has at most 65536 bytes, this one has {0}")]
    TooLong(usize),
}

impl Dictionary {
    /// A dictionary of `bytes` (1 to 64 KiB). Put the most frequent strings last: LZ4 finds
    /// nearer matches more cheaply.
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Result<Self, DictionaryError> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(DictionaryError::Empty);
        }
        if bytes.len() > MAX_DICTIONARY_LEN {
            return Err(DictionaryError::TooLong(bytes.len()));
        }
        Ok(Self {
            id: DictionaryId::of(&bytes),
            bytes,
        })
    }

    /// Its id.
    pub fn id(&self) -> DictionaryId {
        self.id
    }

    /// Its bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The built-in chat dictionary, version 1 (PROTOCOL.md §14.5 gives its id): field names and
/// values of typical chat and presence envelopes, then frequent words and phrases of short
/// messages. Its bytes are normative: changing them changes its id.
pub const CHAT_DICTIONARY_V1: &[u8] = concat!(
    "{\"type\":\"presence\",\"status\":\"online\",\"status\":\"offline\",\"status\":\"away\",",
    "\"last_seen\":\"2026-01-01T00:00:00Z\",\"device\":\"mobile\",\"device\":\"desktop\",",
    "{\"type\":\"typing\",\"typing\":true},{\"type\":\"typing\",\"typing\":false},",
    "{\"type\":\"receipt\",\"read\":true,\"delivered\":true,\"message_id\":\"",
    "{\"type\":\"reaction\",\"emoji\":\"\\ud83d\\udc4d\",\"emoji\":\"\\u2764\\ufe0f\",\"op\":\"add\",\"op\":\"remove\",",
    "{\"type\":\"edit\",\"edited_at\":\"},{\"type\":\"delete\",\"deleted\":true,",
    "\"attachments\":[{\"mime\":\"image/jpeg\",\"mime\":\"image/png\",\"mime\":\"application/pdf\",",
    "\"size\":\"url\":\"https://\",\"thumbnail\":\"width\":\"height\":\"duration\":\"},",
    "\"permissions\":[\"read\",\"write\",\"admin\",\"moderator\"],\"role\":\"member\",",
    "\"group\":\"direct\":\"members\":[\"display_name\":\"avatar\":\"",
    "\"reply_to\":\"thread_id\":\"mentions\":[\"@here\",\"@channel\",\"@all\"],\"seq\":",
    "http://www.https://www.com/.org/.net/.io/?id=&t=",
    " I don't know. I think so. I'll be there in 5 minutes. Sorry, I'm running late. ",
    "Are you free tomorrow? What time works for you? Let me check and get back to you. ",
    "Can you send me the file? Did you see my message? Let's meet at the office. ",
    "Happy birthday! Congratulations! Good morning! Good night! See you soon! ",
    "No problem. Sounds good. Of course. Talk to you later. Have a great day! ",
    "meeting tomorrow today tonight this week next week weekend call me later ",
    "please thanks thank you yes no maybe okay ok lol haha :) :( ;) :D <3 ",
    "what when where why how who which would could should have has had been ",
    "there their they them then than that this these those with from about ",
    "just really very also already still again never always something anything ",
    "the and for you are not but can all your was will one our out get like ",
    "{\"type\":\"message\",\"id\":\"\",\"channel\":\"general\",\"from\":\"\",\"to\":\"\",",
    "\"ts\":1700000000000,\"text\":\"Hello! How are you? I'm good, thanks. ",
    "\"},{\"type\":\"message\",\"id\":\"\",\"channel\":\"\",\"from\":\"\",\"ts\":",
    "\",\"text\":\""
)
.as_bytes();

/// The built-in chat dictionary ([`CHAT_DICTIONARY_V1`]).
pub fn chat_dictionary() -> Dictionary {
    Dictionary {
        id: DictionaryId::of(CHAT_DICTIONARY_V1),
        bytes: Arc::from(CHAT_DICTIONARY_V1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_fnv1a_of_the_bytes() {
        // FNV-1a 32 reference values.
        assert_eq!(DictionaryId::of(b"").0, 0x811c_9dc5);
        assert_eq!(DictionaryId::of(b"a").0, 0xe40c_292c);
        assert_eq!(DictionaryId::of(b"foobar").0, 0xbf9c_f968);
        let d = Dictionary::new(b"foobar".to_vec()).unwrap();
        assert_eq!(d.id(), DictionaryId(0xbf9c_f968));
    }

    #[test]
    fn bad_dictionaries_are_refused() {
        assert_eq!(Dictionary::new(Vec::new()), Err(DictionaryError::Empty));
        assert_eq!(
            Dictionary::new(vec![0u8; MAX_DICTIONARY_LEN + 1]),
            Err(DictionaryError::TooLong(MAX_DICTIONARY_LEN + 1))
        );
    }

    #[test]
    fn chat_dictionary_is_stable() {
        let d = chat_dictionary();
        assert!(d.bytes().len() > 1500 && d.bytes().len() < 4096);
        // PROTOCOL.md §14.5 names this id; changing the bytes must be deliberate.
        assert_eq!(d.id(), DictionaryId::of(CHAT_DICTIONARY_V1));
        let debug = format!("{d:?}");
        assert!(debug.contains("len"));
    }
}
