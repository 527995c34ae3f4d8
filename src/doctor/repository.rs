//! The repository half of `coffer doctor`: what the store and this host's credentials allow.
//!
//! Every operation is tried on a scratch object of doctor's own (`doctor/<host>-<random>`, a
//! folder nothing else reads), which is deleted at the end where the credentials allow it. The
//! store is opened without the metadata cache and with a short retry policy, so a refusal shows
//! at once instead of after minutes of retries. Immutability (Azure's immutability policies, S3
//! Object Lock) is recognised by how the store refuses the delete: neither API tells it up front
//! through the object-store clients coffer uses.

use std::sync::Arc;
use std::time::Duration;

use super::{Check, Section};
use crate::crypto::MasterSecret;
use crate::crypto::kms::{KmsKey, KmsProvider, KmsTrust};
use crate::crypto::slots::KeyProvider;
use crate::error::ErrorKind;
use crate::repo::paths;
use crate::storage::retry::RetryPolicy;
use crate::storage::{PutOutcome, Storage};

/// The store's clock may be this far from the host's before prune's judgement of "recent"
/// objects suffers (`Repository::future_dated` allows 10 minutes).
const CLOCK_WARN: Duration = Duration::from_secs(60);
const CLOCK_FAIL: Duration = Duration::from_secs(600);

/// The retry policy doctor's storage uses: a refusal shows quickly.
pub fn probe_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(1),
        deadline: Duration::from_secs(20),
    }
}

/// Check the store at `location` (opened by the caller with [`probe_retry`]).
pub async fn check_repository(
    location: &str,
    storage: Arc<dyn Storage>,
    trust: &KmsTrust,
) -> Section {
    let mut section = Section {
        kind: "repository",
        target: location.to_string(),
        checks: Vec::new(),
    };
    let local = !location.contains("://") || location.starts_with("file://");
    let initialised = match storage.exists(paths::CONFIG).await {
        Ok(exists) => exists,
        Err(e) => {
            section.checks.push(Check::fail(
                "reachable",
                e.to_string(),
                "nothing can be backed up to or restored from this store",
                e.hint()
                    .unwrap_or("check the location and this host's credentials for it")
                    .to_string(),
            ));
            return section;
        }
    };
    section.checks.push(if initialised {
        Check::ok(
            "reachable",
            "a coffer repository",
            "the store answers with these credentials",
        )
    } else {
        Check::ok(
            "reachable",
            "reachable, and no repository yet",
            "`coffer init` creates one here",
        )
    });
    section
        .checks
        .extend(operations(storage.as_ref(), local).await);
    if initialised {
        section
            .checks
            .extend(key_slots(storage.as_ref(), trust).await);
    }
    section
}

/// Create, read, list, overwrite and delete on a scratch object; the store's clock.
async fn operations(storage: &dyn Storage, local: bool) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut random = [0u8; 8];
    if crate::crypto::fill_random(&mut random).is_err() {
        random = [0; 8];
    }
    let name = format!("doctor/{}-{}", crate::hostname(), hex::encode(random));
    let content = format!("coffer doctor scratch object: {name}");
    let before = jiff::Timestamp::now();
    match storage.put_if_absent(&name, content.as_bytes()).await {
        Ok(_) => checks.push(Check::ok(
            "create",
            "allowed",
            "backups can store new objects",
        )),
        Err(e) => {
            checks.push(Check::fail(
                "create",
                e.to_string(),
                "backups cannot store anything",
                "give this host's credentials create (write) permission: Azure SAS with c (and w for blocks), S3 s3:PutObject, GCS storage.objects.create",
            ));
            return checks;
        }
    }
    let after = jiff::Timestamp::now();
    checks.push(match storage.get(&name, 1 << 20).await {
        Ok(bytes) if bytes == content.as_bytes() => {
            Check::ok("read", "allowed", "restores and checks can read what is stored")
        }
        Ok(_) => Check::fail(
            "read",
            "the object read back differs from what was written",
            "nothing stored here can be trusted to read back",
            "check the store (a proxy or gateway rewriting objects?)",
        ),
        Err(e) => Check::warn(
            "read",
            e.to_string(),
            "this host cannot restore or check; a write-only backup host needs only create, list and its own metadata",
            "grant read (Azure SAS r, S3 s3:GetObject) on hosts that restore",
        ),
    });
    let listed = storage.list("doctor/").await;
    let modified = match &listed {
        Ok(objects) => {
            let found = objects.iter().find(|o| o.name == name);
            checks.push(if found.is_some() {
                Check::ok("list", "allowed", "backups, prune and check can see what is stored")
            } else {
                Check::fail(
                    "list",
                    "the new object is not listed",
                    "coffer finds snapshots and packs by listing: a store that lists late loses track of them",
                    "use a strongly consistent store or endpoint",
                )
            });
            found.and_then(|o| o.modified)
        }
        Err(e) => {
            checks.push(Check::fail(
                "list",
                e.to_string(),
                "coffer finds snapshots and packs by listing",
                "grant list permission (Azure SAS l, S3 s3:ListBucket, GCS storage.objects.list)",
            ));
            None
        }
    };
    checks.push(
        match storage
            .put_if_absent(&name, b"coffer doctor: an overwrite attempt")
            .await
        {
            Ok(PutOutcome::AlreadyExists) => match storage.get(&name, 1 << 20).await {
                Ok(bytes) if bytes != content.as_bytes() => Check::fail(
                    "overwrite",
                    "the store said no, but the object changed",
                    "coffer relies on create-only writes: what is stored is never replaced",
                    "use a store that honours conditional writes (If-None-Match: *)",
                ),
                _ => Check::ok(
                    "overwrite",
                    "refused: the store honours create-only writes",
                    "nothing stored is ever replaced, by coffer or by a host that may only create",
                ),
            },
            Ok(PutOutcome::Created) => Check::fail(
                "overwrite",
                "the store replaced an existing object",
                "coffer relies on create-only writes: a second writer could replace a snapshot or key slot",
                "use a store that honours conditional writes (If-None-Match: *; S3-compatible stores since 2024, Azure, GCS)",
            ),
            Err(e) => Check::warn(
                "overwrite",
                format!("the create-only write failed: {e}"),
                "coffer cannot tell whether the store honours create-only writes",
                "check the store's support for conditional writes",
            ),
        },
    );
    checks.push(clock(modified, before, after, local));
    checks.push(match storage.delete(&name).await {
        Ok(()) => match storage.exists(&name).await {
            Ok(false) => Check::ok(
                "delete",
                "allowed",
                "forget and prune can remove what the retention policy lets go (give backup hosts create-only credentials)",
            ),
            _ => Check::warn(
                "delete",
                "accepted, but the object is still there (soft delete or versioning)",
                "prune frees nothing until the store's own retention removes the versions",
                "expected with soft delete or versioning; the store's lifecycle rules decide when space returns",
            ),
        },
        Err(e) => {
            let text = e.to_string();
            let immutable = ["immutab", "objectlock", "object lock", "retention", "worm", "legal hold"]
                .iter()
                .any(|word| text.to_ascii_lowercase().contains(word));
            if immutable {
                Check::warn(
                    "delete",
                    format!("refused by an immutability policy or object lock ({text})"),
                    "nothing stored can be removed before the policy allows it: prune frees space only after that; the scratch object {name} stays until then",
                    "expected on an immutable store; size the retention to the policy",
                )
            } else if e.kind() == ErrorKind::Storage {
                Check::warn(
                    "delete",
                    format!("refused: {text}"),
                    format!("this host cannot forget or prune (fine, and recommended, for a backup host); the scratch object {name} stays"),
                    "run forget and prune from a host whose credentials may delete (Azure SAS d, S3 s3:DeleteObject)",
                )
            } else {
                Check::warn("delete", text, "this host cannot forget or prune", "check the credentials")
            }
        }
    });
    checks
}

/// The store's clock against the host's, from the scratch object's modification time.
fn clock(
    modified: Option<jiff::Timestamp>,
    before: jiff::Timestamp,
    after: jiff::Timestamp,
    local: bool,
) -> Check {
    if local {
        return Check::ok(
            "clock",
            "a local folder: the host's own clock",
            "prune's judgement of recent objects is consistent",
        );
    }
    let Some(modified) = modified else {
        return Check::warn(
            "clock",
            "the store gives no modification time",
            "prune cannot tell recent objects by the store's clock",
            "use a store that reports Last-Modified",
        );
    };
    // Stores keep whole seconds: allow for the rounding.
    let skew = if modified < before {
        before.duration_since(modified)
    } else if modified > after {
        modified.duration_since(after)
    } else {
        jiff::SignedDuration::ZERO
    };
    let skew =
        Duration::from_secs(skew.as_secs().unsigned_abs()).saturating_sub(Duration::from_secs(1));
    let found = format!(
        "the store's clock is {}s {} the host's",
        skew.as_secs(),
        if modified < before {
            "behind"
        } else {
            "ahead of"
        }
    );
    if skew <= CLOCK_WARN {
        Check::ok("clock", found, "the store and this host agree on the time")
    } else if skew <= CLOCK_FAIL {
        Check::warn(
            "clock",
            found,
            "prune judges recent objects by the store's clock; snapshot times come from the host's",
            "synchronise the host's clock (chrony, systemd-timesyncd)",
        )
    } else {
        Check::fail(
            "clock",
            found,
            "snapshot times and the store's times disagree by more than prune's 10-minute allowance",
            "synchronise the host's clock (chrony, systemd-timesyncd)",
        )
    }
}

/// Each KMS slot wraps and unwraps a test value with this host's identity.
async fn key_slots(storage: &dyn Storage, trust: &KmsTrust) -> Vec<Check> {
    let mut checks = Vec::new();
    let listed = match storage.list(paths::KEYS).await {
        Ok(listed) => listed,
        Err(e) => {
            checks.push(Check::fail(
                "key slots",
                e.to_string(),
                "the repository cannot be opened",
                "grant list and read on keys/",
            ));
            return checks;
        }
    };
    for meta in listed {
        let id = meta.name.trim_start_matches(paths::KEYS).to_string();
        let short: String = id.chars().take(8).collect();
        let slot = match crate::repo::read_key_slot(storage, &meta).await {
            Ok(slot) => slot,
            Err(e) => {
                checks.push(Check::warn(
                    format!("key slot {short}"),
                    e.to_string(),
                    "this slot cannot be used by this coffer",
                    "see `coffer key list`",
                ));
                continue;
            }
        };
        let Some(key) = KmsKey::of_slot(&slot) else {
            checks.push(Check::ok(
                format!("key slot {short}"),
                format!("{} slot", slot.kind()),
                match slot.kind() {
                    "write-only" => "a write-only key file (COFFER_KEY_FILE) opens it for backups",
                    _ => "opened with its passphrase (COFFER_PASSWORD or COFFER_PASSWORD_FILE)",
                },
            ));
            continue;
        };
        checks.push(kms_round_trip(&short, key, trust).await);
    }
    checks
}

async fn kms_round_trip(short: &str, key: KmsKey, trust: &KmsTrust) -> Check {
    let name = format!("key slot {short}");
    let url = key.url();
    let provider = KmsProvider::with_key(key, trust.clone());
    let test = match MasterSecret::generate() {
        Ok(test) => test,
        Err(e) => {
            return Check::fail(
                name,
                e.to_string(),
                "no test value",
                "check the host's randomness source",
            );
        }
    };
    let wrapped = match provider.wrap(&test, "coffer-doctor-test-value").await {
        Ok(wrapped) => wrapped,
        Err(e) => {
            return Check::fail(
                name,
                format!("{url}: wrapping a test value failed: {e}"),
                "this host's identity cannot use the key: new key slots and KMS checks fail here",
                e.hint()
                    .unwrap_or("grant this host's identity wrap/encrypt on the key (Key Vault: Key Vault Crypto User; AWS: kms:Encrypt)")
                    .to_string(),
            );
        }
    };
    match provider.unwrap(&wrapped).await {
        Ok(Some(back)) if back.as_bytes() == test.as_bytes() => Check::ok(
            name,
            format!("{url}: a test value wrapped and unwrapped"),
            "this host opens the repository with its own identity, no secret on disk",
        ),
        Ok(_) => Check::fail(
            name,
            format!("{url}: the unwrapped test value differs"),
            "the key does not give back what it wrapped",
            "check the key's algorithm and the KMS endpoint",
        ),
        Err(e) => Check::fail(
            name,
            format!("{url}: wrap allowed, unwrap refused: {e}"),
            "this host cannot open the repository with this slot (restore, check, prune, forget need it); a backup host holding a write-only key file does not",
            e.hint()
                .unwrap_or("grant this host's identity unwrap/decrypt on the key (Key Vault: Key Vault Crypto User; AWS: kms:Decrypt), or use a write-only key file on backup hosts")
                .to_string(),
        ),
    }
}
