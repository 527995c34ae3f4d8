//! Key slot management (`coffer key …`): list, add, remove and replace the slots that wrap the
//! master secret. None of it re-encrypts data: every slot wraps the same master secret.

use super::{Repository, paths, read_key_slot};
use crate::crypto::keys::{KeyProvider, KeySlot};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::{PutOutcome, Storage};

/// Store `slot` under a new random id; returns the id.
pub(crate) async fn store_slot(storage: &dyn Storage, slot: &KeySlot) -> Result<String> {
    let json = serde_json::to_vec_pretty(slot)
        .map_err(|e| Error::invalid("encoding key slot").with_source(e))?;
    let mut raw = [0u8; 16];
    crate::crypto::fill_random(&mut raw)?;
    let id = hex::encode(raw);
    if storage
        .put_if_absent(&format!("{}{id}", paths::KEYS), &json)
        .await?
        == PutOutcome::AlreadyExists
    {
        return Err(Error::invalid(format!("key slot {id} exists already")));
    }
    Ok(id)
}

/// Whether `storage` holds a key slot wrapped by a KMS (so opening may try KMS credentials).
pub async fn has_kms_slots(storage: &dyn Storage) -> Result<bool> {
    for meta in storage.list(paths::KEYS).await? {
        match read_key_slot(storage, &meta).await {
            Ok(slot) if slot.key_url().is_some() => return Ok(true),
            Err(e) if e.kind() == ErrorKind::Storage => return Err(e),
            _ => {}
        }
    }
    Ok(false)
}

/// One slot as `key list` shows it.
#[derive(Debug)]
pub struct ListedSlot {
    pub id: String,
    /// The slot, or why it cannot be read by this coffer.
    pub slot: std::result::Result<KeySlot, String>,
}

impl Repository {
    /// The id of the slot that opened this repository.
    pub fn opened_slot(&self) -> &str {
        &self.opened_slot
    }

    /// Every key slot.
    pub async fn key_slots(&self) -> Result<Vec<ListedSlot>> {
        let mut out = Vec::new();
        for meta in self.storage.list(paths::KEYS).await? {
            let id = meta.name.trim_start_matches(paths::KEYS).to_string();
            let slot = match read_key_slot(self.storage.as_ref(), &meta).await {
                Ok(slot) => Ok(slot),
                Err(e) if e.kind() == ErrorKind::Storage => return Err(e),
                Err(e) => Err(e.to_string()),
            };
            out.push(ListedSlot { id, slot });
        }
        Ok(out)
    }

    /// Wrap the master secret with `provider` into a new slot; returns its id.
    pub async fn add_key_slot(&self, provider: &dyn KeyProvider) -> Result<String> {
        let slot = provider.wrap(&self.master, &self.config.id).await?;
        // Prove the new slot opens before anyone relies on it.
        match provider.unwrap(&slot).await? {
            Some(master) if master.as_bytes() == self.master.as_bytes() => {}
            _ => {
                return Err(Error::invalid(
                    "the new key slot does not give back the repository key; nothing was added",
                ));
            }
        }
        store_slot(self.storage.as_ref(), &slot).await
    }

    /// The full id of the slot `id_or_prefix` names.
    pub async fn resolve_key_slot(&self, id_or_prefix: &str) -> Result<ListedSlot> {
        let wanted = id_or_prefix.to_ascii_lowercase();
        let mut matching: Vec<ListedSlot> = self
            .key_slots()
            .await?
            .into_iter()
            .filter(|s| !wanted.is_empty() && s.id.starts_with(&wanted))
            .collect();
        match matching.len() {
            1 => Ok(matching.remove(0)),
            0 => Err(Error::not_found(format!("no key slot {id_or_prefix}"))
                .with_hint("list them with `coffer key list`")),
            n => Err(Error::invalid(format!(
                "key slot id {id_or_prefix} is ambiguous ({n} slots match)"
            ))
            .with_hint("give more digits")),
        }
    }

    /// Remove slot `id`, unless it is the last slot that can open the repository.
    pub async fn remove_key_slot(&self, id: &str) -> Result<()> {
        let target = self.resolve_key_slot(id).await?;
        let others = self
            .key_slots()
            .await?
            .into_iter()
            .filter(|s| s.id != target.id && s.slot.is_ok())
            .count();
        if others == 0 {
            return Err(Error::invalid(format!(
                "key slot {} is the last one that can open the repository; it was not removed",
                target.id
            ))
            .with_hint("add another slot first (`coffer key add`)"));
        }
        self.storage
            .delete(&format!("{}{}", paths::KEYS, target.id))
            .await
    }
}
