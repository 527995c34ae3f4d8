//! Typed 256-bit ids. A blob id is the keyed hash of the blob's plaintext; pack, index and
//! snapshot ids are the plain BLAKE3 hash of the stored (encrypted) bytes, so `check` can verify
//! every stored object against its name without the key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hex digits, as shown to users.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                parse_hex32(s).map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// Keyed hash of a blob's plaintext.
    BlobId
);
typed_id!(
    /// Hash of a pack object's bytes.
    PackId
);
typed_id!(
    /// Hash of a snapshot object's bytes.
    SnapshotId
);
typed_id!(
    /// Hash of an index object's bytes.
    IndexId
);

/// The first 8 characters of an id kept as text (a snapshot's `carried_from`, an object name),
/// as users are shown ids; the whole text if it is shorter or not cut cleanly there.
pub fn short_text(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn parse_hex32(s: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| Error::corrupt(format!("{s:?} is not a 64-digit hex id")))?;
    Ok(out)
}

/// Plain BLAKE3 of stored bytes: the name of packs, index files and snapshots.
pub fn storage_hash(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}
