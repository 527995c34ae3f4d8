//! `coffer restore --accounts` / `--accounts-only`: the accounts, roles and grants of a backup,
//! checked against the target before anything changes (`coffer::restore::accounts` holds the
//! rules), created after the databases.

use std::collections::BTreeMap;

use coffer::Result;
use coffer::repo::Repository;
use coffer::repo::index::Index;
use coffer::repo::select::ChosenSnapshot;
use coffer::restore::accounts::{
    AccountOutcome, AccountResult, AccountsOptions, AccountsPlan, Renaming, apply, check_writer,
    load, plan,
};
use coffer::source::mysql::MysqlTarget;

use super::restore::RestoreArgs;

/// Accounts checked against the target, ready to be created.
pub(super) struct PreparedAccounts {
    plan: AccountsPlan,
    /// The snapshot they come from (on a sharded run, shard 0's).
    pub snapshot: String,
}

/// Load the backup's accounts and check them against `target`: every refusal is an error here,
/// before the restore changes anything. `restored` are the databases restored (by their names
/// in the backup), whose grants follow `--into-prefix`.
pub(super) async fn prepare(
    args: &RestoreArgs,
    target: &MysqlTarget,
    repo: &Repository,
    index: &Index,
    chosen: &ChosenSnapshot,
    restored: Vec<String>,
) -> Result<PreparedAccounts> {
    let (id, snapshot) = repo.accounts_of_backup(chosen).await?;
    let options = AccountsOptions {
        drop_existing: args.drop_existing,
        allow_unproven: args.accounts_from_write_only,
        renaming: Renaming {
            prefix: args.into_prefix.clone(),
            databases: restored,
        },
    };
    check_writer(&repo.written_by(&snapshot), &options)?;
    let set = load(repo, index, &id, &snapshot).await?;
    let mut conn = target.connect().await?;
    let plan = plan(&mut conn, &set, &snapshot.source.server_version, &options).await?;
    let _ = conn.disconnect().await;
    Ok(PreparedAccounts {
        plan,
        snapshot: id.to_hex(),
    })
}

/// What the accounts part of a restore did, counted for the audit record and the exit code.
pub(super) struct AccountsDone {
    pub results: Vec<AccountResult>,
    pub counts: BTreeMap<String, u64>,
    /// Some account is not as recorded on the target (failed, differs, a grant skipped).
    pub incomplete: bool,
}

/// Create the prepared accounts, printing one line per account unless `json`.
pub(super) async fn finish(
    prepared: &PreparedAccounts,
    target: &MysqlTarget,
    json: bool,
) -> Result<AccountsDone> {
    let mut conn = target.connect().await?;
    let results = apply(&mut conn, &prepared.plan).await;
    let _ = conn.disconnect().await;
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for key in ["created", "replaced", "unchanged", "differing", "failed"] {
        counts.insert(format!("accounts_{key}"), 0);
    }
    let mut skipped = 0u64;
    for result in &results {
        let (key, line) = match &result.outcome {
            AccountOutcome::Created => ("created", "created".to_string()),
            AccountOutcome::Replaced => ("replaced", "replaced (it differed)".to_string()),
            AccountOutcome::Unchanged => ("unchanged", "already there, the same".to_string()),
            AccountOutcome::Differs(what) => (
                "differing",
                format!(
                    "already there and DIFFERENT, left alone (--drop-existing replaces it): {}",
                    what.join("; ")
                ),
            ),
            AccountOutcome::Failed(why) => ("failed", format!("FAILED: {why}")),
        };
        *counts.entry(format!("accounts_{key}")).or_default() += 1;
        skipped += result.skipped_grants.len() as u64;
        if !json {
            let kind = if result.role { "role" } else { "account" };
            println!("{kind} {}: {line}", result.account);
            for grant in &result.skipped_grants {
                println!("  not granted, the target has no such object: {grant}");
            }
        }
    }
    counts.insert("grants_skipped".into(), skipped);
    let incomplete = counts["accounts_failed"] + counts["accounts_differing"] + skipped > 0;
    if !json {
        println!(
            "accounts: {} created, {} replaced, {} unchanged, {} different, {} failed, {skipped} grant(s) skipped",
            counts["accounts_created"],
            counts["accounts_replaced"],
            counts["accounts_unchanged"],
            counts["accounts_differing"],
            counts["accounts_failed"],
        );
    }
    Ok(AccountsDone {
        results,
        counts,
        incomplete,
    })
}
