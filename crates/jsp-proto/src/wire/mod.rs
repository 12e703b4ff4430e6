//! Wire codec: varints, packet headers, packet numbers, frames, transport parameters and handshake messages.
