//! `coffer key`: the key slots that open the repository (list, add, remove, passwd, rotate).
//! No command here re-encrypts data: every slot wraps the same master secret.

use std::process::ExitCode;
use std::sync::Arc;

use coffer::crypto::keys::PassphraseProvider;
use coffer::crypto::kms::slot_key_url;
use coffer::crypto::kms::{KmsKey, KmsProvider};
use coffer::crypto::slots::KeyProvider;
use coffer::repo::Repository;
use coffer::repo::keyslots::ListedSlot;
use coffer::{Error, Result};

use super::audit::{AuditTrail, Audited, check_reason};
use super::{RepoArg, new_passphrase, print_json};

#[derive(clap::Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// List the key slots: id, kind, when and where made, what they may do.
    List {
        #[command(flatten)]
        repo: RepoArg,
        #[arg(long)]
        json: bool,
    },
    /// Add a slot: a new passphrase (COFFER_NEW_PASSWORD[_FILE] or a prompt), or a KMS key.
    Add {
        #[command(flatten)]
        repo: RepoArg,
        /// A new passphrase slot.
        #[arg(long, conflicts_with_all = ["kms", "write_only"], required_unless_present_any = ["kms", "write_only"])]
        passphrase: bool,
        /// A slot wrapped by a KMS key: aws-kms://KEY_ID_OR_ARN?region=R[&endpoint=URL&allow-http=true]
        /// or azure-keyvault://VAULT.vault.azure.net/keys/NAME.
        #[arg(long, value_name = "URL", conflicts_with = "write_only")]
        kms: Option<String>,
        /// A write-only key for a backup host: it can back up (deduplicating) but not read any
        /// table data, definition or tree. Written to --output (mode 0600); used as
        /// COFFER_KEY_FILE=FILE.
        #[arg(long, requires = "output")]
        write_only: bool,
        /// Where to write the write-only key file (must not exist).
        #[arg(long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// Why (kept in the audit log).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Remove a slot (refused for the last one that can open the repository).
    Remove {
        #[command(flatten)]
        repo: RepoArg,
        /// Slot id (or a unique prefix), from `coffer key list`.
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Change the passphrase of the slot that opened the repository (COFFER_NEW_PASSWORD[_FILE]
    /// or a prompt): a new slot is added, then the old one removed.
    Passwd {
        #[command(flatten)]
        repo: RepoArg,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Wrap a KMS slot again under its key's current version, then remove the old slot.
    Rotate {
        #[command(flatten)]
        repo: RepoArg,
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(serde::Serialize)]
struct SlotView {
    id: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<jiff::Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// `read-write`, or why this coffer cannot use the slot.
    may: String,
    opened_this_session: bool,
}

fn view(listed: &ListedSlot, opened: &str) -> SlotView {
    match &listed.slot {
        Ok(slot) => SlotView {
            id: listed.id.clone(),
            kind: slot.kind().to_string(),
            created: Some(slot.created),
            host: Some(slot.hostname.clone()),
            key: slot_key_url(slot),
            may: if slot.can_read() {
                "read-write"
            } else {
                "write-only"
            }
            .to_string(),
            opened_this_session: listed.id == opened,
        },
        Err(why) => SlotView {
            id: listed.id.clone(),
            kind: "unknown".to_string(),
            created: None,
            host: None,
            key: None,
            may: format!("unusable here: {why}"),
            opened_this_session: false,
        },
    }
}

pub async fn run(args: KeyArgs) -> Result<ExitCode> {
    match args.command {
        KeyCommand::List { repo, json } => {
            let repo = repo.open_allowing_write_only().await?;
            let slots: Vec<SlotView> = repo
                .key_slots()
                .await?
                .iter()
                .map(|s| view(s, repo.opened_slot()))
                .collect();
            if json {
                print_json(&slots)?;
            } else {
                println!(
                    "{:<34} {:<11} {:<17} {:<16} {:<11} KEY",
                    "ID", "KIND", "CREATED", "HOST", "MAY"
                );
                for s in &slots {
                    println!(
                        "{}{:<33} {:<11} {:<17} {:<16} {:<11} {}",
                        if s.opened_this_session { "*" } else { " " },
                        s.id,
                        s.kind,
                        s.created
                            .map(|c| c.strftime("%Y-%m-%d %H:%M").to_string())
                            .unwrap_or_default(),
                        s.host.as_deref().unwrap_or(""),
                        s.may,
                        s.key.as_deref().unwrap_or("")
                    );
                }
                println!("* the slot that opened the repository now");
            }
            Ok(ExitCode::SUCCESS)
        }
        KeyCommand::Add {
            repo,
            passphrase,
            kms,
            write_only,
            output,
            reason,
        } => {
            check_reason(&reason)?;
            if write_only {
                let output =
                    output.ok_or_else(|| Error::invalid("--write-only needs --output FILE"))?;
                let repo = repo.open().await?;
                return audited(&repo, "key add", reason, async {
                    let (id, file) = repo.add_write_only_key().await?;
                    write_key_file(&output, &file)?;
                    println!(
                        "added write-only key slot {id}; key file {} (give it to the backup host as COFFER_KEY_FILE, then delete this copy)",
                        output.display()
                    );
                    Ok(())
                })
                .await;
            }
            let provider: Box<dyn KeyProvider> = match (&kms, passphrase) {
                (Some(url), _) => Box::new(KmsProvider::with_key(
                    KmsKey::parse(url)?,
                    repo.kms_trust()?,
                )),
                (None, true) => Box::new(PassphraseProvider::new(new_passphrase()?)?),
                (None, false) => {
                    return Err(Error::invalid("say what to add: --passphrase or --kms URL"));
                }
            };
            let repo = repo.open().await?;
            audited(&repo, "key add", reason, async {
                let id = repo.add_key_slot(provider.as_ref()).await?;
                println!("added key slot {id}");
                Ok(())
            })
            .await
        }
        KeyCommand::Remove { repo, id, reason } => {
            check_reason(&reason)?;
            let repo = repo.open().await?;
            audited(&repo, "key remove", reason, async {
                let target = repo.resolve_key_slot(&id).await?;
                repo.remove_key_slot(&target.id).await?;
                println!("removed key slot {}", target.id);
                Ok(())
            })
            .await
        }
        KeyCommand::Passwd { repo, reason } => {
            check_reason(&reason)?;
            let repo = repo.open().await?;
            let opened = repo.resolve_key_slot(repo.opened_slot()).await?;
            if opened.slot.as_ref().map(|s| s.kind()) != Ok("passphrase") {
                return Err(Error::invalid(
                    "the repository was opened by a slot that is not a passphrase; passwd changes the passphrase of the slot that opened it",
                )
                .with_hint("open with the passphrase (COFFER_PASSWORD), or use `key add --passphrase` and `key remove`"));
            }
            let provider = PassphraseProvider::new(new_passphrase()?)?;
            audited(&repo, "key passwd", reason, async {
                let id = repo.add_key_slot(&provider).await?;
                repo.remove_key_slot(&opened.id).await?;
                println!("passphrase changed: slot {} replaces {}", id, opened.id);
                Ok(())
            })
            .await
        }
        KeyCommand::Rotate { repo, id, reason } => {
            check_reason(&reason)?;
            let trust = repo.kms_trust()?;
            let repo = repo.open().await?;
            let target = repo.resolve_key_slot(&id).await?;
            let key = target
                .slot
                .as_ref()
                .ok()
                .and_then(KmsKey::of_slot)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "key slot {} is not wrapped by a KMS key",
                        target.id
                    ))
                    .with_hint("a passphrase slot changes with `coffer key passwd`")
                })?;
            audited(&repo, "key rotate", reason, async {
                let id = repo
                    .add_key_slot(&KmsProvider::with_key(key.latest_version(), trust))
                    .await?;
                repo.remove_key_slot(&target.id).await?;
                println!("key slot {id} replaces {} ({})", target.id, key.url());
                Ok(())
            })
            .await
        }
    }
}

/// Create `path` (refusing an existing file) readable by its owner only, holding `content`.
fn write_key_file(path: &std::path::Path, content: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let failed = |e: std::io::Error| {
        Error::invalid(format!("writing the key file {}", path.display()))
            .with_source(e)
            .with_hint("choose a path that does not exist yet, in a folder you may write")
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    file.write_all(content.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// Run a key change between an audit record of its start and one of its outcome.
async fn audited(
    repo: &Arc<Repository>,
    command: &str,
    reason: Option<String>,
    change: impl std::future::Future<Output = Result<()>>,
) -> Result<ExitCode> {
    let trail = AuditTrail::start(repo, command, reason, |_| {}).await?;
    let result = change.await.map(|()| {
        (
            ExitCode::SUCCESS,
            Audited {
                definers: None,
                snapshot: None,
                target_database: None,
                counts: Default::default(),
            },
        )
    });
    trail.finish(result).await
}
