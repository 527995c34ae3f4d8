//! `coffer init`: create a repository.

use std::process::ExitCode;

use coffer::crypto::keys::PassphraseProvider;
use coffer::crypto::kms::{KmsKey, KmsProvider};
use coffer::crypto::slots::KeyProvider;
use coffer::repo::{ChunkerParams, InitOptions, Repository};
use coffer::{Error, Result};

use super::{RepoArg, parse_size, passphrase};

#[derive(clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    repo: RepoArg,
    /// Average chunk size of table data (power of two, e.g. 1MiB; default 1MiB). Fixed for
    /// the life of the repository.
    #[arg(long, value_parser = parse_size)]
    chunk_size: Option<u32>,
    /// Target size of pack objects (1MiB to 256MiB; default 16MiB). Larger packs mean fewer
    /// objects; restores read by byte range either way.
    #[arg(long, value_parser = parse_size)]
    pack_size: Option<u32>,
    /// Wrap the repository key with this KMS key instead of a passphrase
    /// (aws-kms://KEY_ID_OR_ARN?region=R): no secret is needed on hosts whose identity may use it.
    #[arg(long, value_name = "URL")]
    kms: Option<String>,
}

pub async fn run(args: InitArgs) -> Result<ExitCode> {
    let storage = args.repo.storage()?.storage;
    let provider: Box<dyn KeyProvider> = match &args.kms {
        Some(url) => Box::new(KmsProvider::with_key(
            KmsKey::parse(url)?,
            args.repo.kms_trust()?,
        )),
        None => Box::new(PassphraseProvider::new(passphrase(true)?)?),
    };
    let chunker = match args.chunk_size {
        Some(size) => ChunkerParams::with_average(size)?,
        None => ChunkerParams::default(),
    };
    let mut options = InitOptions {
        chunker,
        ..Default::default()
    };
    if let Some(size) = args.pack_size {
        if !(1 << 20..=256 << 20).contains(&size) {
            return Err(Error::invalid(format!(
                "--pack-size {size} is outside 1MiB..256MiB"
            )));
        }
        options.pack_size = size;
    }
    let repo = Repository::init(storage, provider.as_ref(), options).await?;
    println!(
        "created repository {} at {}",
        repo.config().id,
        repo.storage().location()
    );
    if args.kms.is_some() {
        println!(
            "the repository key is wrapped by the KMS key only: add a passphrase slot (`coffer key add --passphrase`) kept offline, in case the KMS key is lost"
        );
    } else {
        println!("keep the passphrase safe: without it the backups cannot be read");
    }
    Ok(ExitCode::SUCCESS)
}
