//! `dev-issuer`: a throwaway OpenID Connect issuer for trying Palisade without an identity
//! provider (the quickstart's approvals). `init` makes a key and writes the JWKS a policy's
//! `spec.identity.oidc.jwksSecretRef` points at; `token` prints an ID token for a user.
//! Never use it in place of a real IdP: whoever holds its key can be anyone.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use palisade_tests::issuer::{self, Issuer};

#[derive(Parser)]
#[command(name = "dev-issuer", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an issuer in DIR: its key (key.pk8), its URL (issuer) and its JWKS (jwks.json).
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// The `iss` the tokens carry; the policy's `spec.identity.oidc.issuer`.
        #[arg(long, default_value = "https://issuer.palisade.invalid")]
        issuer: String,
    },
    /// Print an ID token (audience `palisade`, valid for an hour).
    Token {
        #[arg(long)]
        dir: PathBuf,
        /// The user's e-mail (the `email` claim).
        #[arg(long)]
        user: String,
        /// A group the user is in (the `groups` claim); repeatable.
        #[arg(long = "group")]
        groups: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Init { dir, issuer } => {
            std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
            let issuer = Issuer::generate(&issuer)?;
            std::fs::write(dir.join("key.pk8"), issuer.pkcs8())?;
            std::fs::write(dir.join("issuer"), issuer.url())?;
            std::fs::write(dir.join("jwks.json"), issuer.jwks())?;
            println!("{}", dir.join("jwks.json").display());
        }
        Command::Token { dir, user, groups } => {
            let issuer = issuer::load(&dir)?;
            let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
            println!("{}", issuer.sign(issuer.id_token_claims(&user, &groups))?);
        }
    }
    Ok(())
}
