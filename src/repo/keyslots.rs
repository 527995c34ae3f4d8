//! Key slot management (`coffer key …`): list, add, remove and replace the slots that wrap the
//! master secret. None of it re-encrypts data: every slot wraps the same master secret.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Config, FORMAT_VERSION, Repository, paths, read_key_slot};
use crate::crypto::kms::slot_key_url;
use crate::crypto::slots::{KeyProvider, KeySlot, Wrapping, open_with_kek, seal_with_kek};
use crate::crypto::{Keys, MasterSecret, Role, WriteMaterial, fill_random};
use crate::error::{Error, ErrorKind, Result};
use crate::storage::{PutOutcome, Storage};

const WRITE_ONLY_AAD: &[u8] = b"coffer.v1.write-only-slot";

/// The file a backup host holds (`COFFER_KEY_FILE`): which slot, and the secret opening it.
#[derive(Serialize, Deserialize)]
struct WriteOnlyKeyFile {
    coffer_write_only_key: u32,
    repository: String,
    slot: String,
    /// base64, 32 bytes.
    secret: String,
}

/// What a write-only slot holds, sealed under the key file's secret.
#[derive(Serialize, Deserialize)]
struct WriteOnlyGrant {
    material: WriteMaterial,
    config: Config,
}

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
            Ok(slot) if slot_key_url(&slot).is_some() => return Ok(true),
            Err(e) if e.kind() == ErrorKind::Storage => return Err(e),
            _ => {}
        }
    }
    Ok(false)
}

fn write_only_refused() -> Error {
    Error::new(
        ErrorKind::WrongPassword,
        "this needs a full key, and the repository was opened with a write-only key (COFFER_KEY_FILE)",
    )
    .with_hint("run this with a passphrase or KMS slot (unset COFFER_KEY_FILE)")
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

    /// The master secret, or the error for a write-only key.
    fn master(&self) -> Result<&MasterSecret> {
        self.require_full_key()?;
        self.master.as_ref().ok_or_else(write_only_refused)
    }

    /// Whether the repository was opened with a write-only key file.
    pub fn is_write_only(&self) -> bool {
        self.master.is_none()
    }

    /// Refuse to go on with a write-only key: for everything but writing a backup and listing
    /// what the metadata key shows (forget, prune and key changes above all, which a stolen
    /// backup host must not be able to run).
    pub fn require_full_key(&self) -> Result<()> {
        match self.master {
            Some(_) => Ok(()),
            None => Err(write_only_refused()),
        }
    }

    /// Wrap the master secret with `provider` into a new slot; returns its id.
    pub async fn add_key_slot(&self, provider: &dyn KeyProvider) -> Result<String> {
        let master = self.master()?;
        let slot = provider.wrap(master, &self.config.id).await?;
        // Prove the new slot opens before anyone relies on it.
        match provider.unwrap(&slot).await? {
            Some(unwrapped) if unwrapped.as_bytes() == master.as_bytes() => {}
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
            .filter(|s| s.id != target.id && s.slot.as_ref().is_ok_and(KeySlot::can_read))
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

impl Repository {
    /// Add a write-only key: a slot holding what a backup host needs to write (and nothing to
    /// read private objects), sealed under a new random secret. Returns the slot id and the
    /// content of the key file. Index files written before coffer 0.3 are sealed again under
    /// the metadata key first, so the new key deduplicates against everything stored.
    pub async fn add_write_only_key(&self) -> Result<(String, Zeroizing<String>)> {
        self.master()?;
        self.reseal_legacy_index_files().await?;
        let grant = WriteOnlyGrant {
            material: self.keys.write_material(),
            config: self.config.clone(),
        };
        let json = Zeroizing::new(
            serde_json::to_vec(&grant)
                .map_err(|e| Error::invalid("encoding a write-only key").with_source(e))?,
        );
        let mut secret = Zeroizing::new([0u8; 32]);
        fill_random(secret.as_mut())?;
        let wrapped_key = seal_with_kek(&secret, WRITE_ONLY_AAD, &json)?;
        let slot = KeySlot {
            version: FORMAT_VERSION,
            created: jiff::Timestamp::now(),
            hostname: crate::hostname(),
            wrapping: Wrapping::WriteOnly {},
            wrapped_key,
        };
        let id = store_slot(self.storage.as_ref(), &slot).await?;
        let file = WriteOnlyKeyFile {
            coffer_write_only_key: 1,
            repository: self.config.id.clone(),
            slot: id.clone(),
            secret: B64.encode(*secret),
        };
        let text = serde_json::to_string_pretty(&file)
            .map_err(|e| Error::invalid("encoding a key file").with_source(e))?;
        Ok((id, Zeroizing::new(text)))
    }

    /// Open a repository with a write-only key file's content (refusing one whose id is not
    /// the one `options` expects).
    pub async fn open_write_only(
        storage: Arc<dyn Storage>,
        key_file: &str,
        options: &super::OpenOptions,
    ) -> Result<Self> {
        let file: WriteOnlyKeyFile = serde_json::from_str(key_file).map_err(|e| {
            Error::invalid("COFFER_KEY_FILE is not a coffer write-only key file")
                .with_source(e)
                .with_hint("use the file `coffer key add --write-only --output FILE` wrote")
        })?;
        let secret = Zeroizing::new(
            B64.decode(&file.secret)
                .ok()
                .and_then(|s| <[u8; 32]>::try_from(s.as_slice()).ok())
                .ok_or_else(|| Error::invalid("the write-only key file's secret is damaged"))?,
        );
        if file.slot.is_empty() || !file.slot.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid(
                "the write-only key file names no valid slot",
            ));
        }
        let name = format!("{}{}", paths::KEYS, file.slot);
        let listed = storage.list(paths::KEYS).await?;
        let slot: KeySlot = match listed.into_iter().find(|m| m.name == name) {
            Some(meta) => read_key_slot(storage.as_ref(), &meta).await?,
            None => {
                return Err(Error::new(
                    ErrorKind::WrongPassword,
                    format!(
                        "write-only key slot {} is not in {} (removed, or another repository)",
                        file.slot,
                        storage.location()
                    ),
                ));
            }
        };
        if !matches!(slot.wrapping, Wrapping::WriteOnly {}) {
            return Err(Error::invalid(format!(
                "key slot {} is not a write-only key",
                file.slot
            )));
        }
        let json = open_with_kek(
            &secret,
            WRITE_ONLY_AAD,
            &slot.wrapped_key,
            "write-only key slot",
        )?
        .ok_or_else(|| {
            Error::new(
                ErrorKind::WrongPassword,
                format!(
                    "the key file does not open write-only key slot {}",
                    file.slot
                ),
            )
        })?;
        let grant: WriteOnlyGrant = serde_json::from_slice(&json)
            .map_err(|e| Error::corrupt("write-only key slot is not valid").with_source(e))?;
        if grant.config.id != file.repository || grant.config.version != FORMAT_VERSION {
            return Err(Error::invalid(
                "the write-only key belongs to another repository or format version",
            ));
        }
        super::check_expected_id(&grant.config, options, &storage.location())?;
        Ok(Repository {
            storage,
            keys: Keys::write_only(&grant.material),
            config: grant.config.clone(),
            master: None,
            opened_slot: file.slot,
            index_cache: None,
        })
    }

    /// Seal again, under the metadata key, every index file written before coffer 0.3 under
    /// the AEAD key (so write-only keys can read the whole index): the new file is stored
    /// before the old one is deleted, so the index is complete at every moment.
    async fn reseal_legacy_index_files(&self) -> Result<usize> {
        let mut resealed = 0;
        for meta in self.storage.list(paths::INDEX).await? {
            let sealed = self
                .storage
                .get(&meta.name, super::MAX_METADATA_OBJECT)
                .await?;
            if self.keys.is_sealed_as_metadata(Role::Index, &sealed) {
                continue;
            }
            let file: super::index::IndexFile = self.load_json(&meta.name, Role::Index).await?;
            self.save_index(&file).await?;
            self.storage.delete(&meta.name).await?;
            resealed += 1;
        }
        Ok(resealed)
    }
}
