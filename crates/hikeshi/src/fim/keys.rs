//! Ed25519 keys for signing baselines. The secret half can live off the
//! host (e.g. on the administrator's machine or a USB key): `init` and
//! `update` need it, `check` needs only the public half.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use hikeshi_core::fim::record::hex;

use super::baseline::parse_hex;

const SECRET_TAG: &str = "hikeshi-fim-ed25519-secret";
const PUBLIC_TAG: &str = "hikeshi-fim-ed25519-public";

/// Creates a new key pair from the kernel's random source.
pub fn generate() -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .context("cannot read /dev/urandom")?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes the secret key (mode 0600, never overwriting) and the public key.
pub fn write_pair(key: &SigningKey, secret_path: &Path, public_path: &Path) -> Result<()> {
    let mut secret = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(secret_path)
        .with_context(|| {
            format!("cannot create {} (it must not exist yet)", secret_path.display())
        })?;
    writeln!(secret, "{SECRET_TAG} {}", hex(key.as_bytes()))?;
    secret.sync_all()?;
    std::fs::write(public_path, public_line(&key.verifying_key()))
        .with_context(|| format!("cannot write {}", public_path.display()))?;
    Ok(())
}

/// `hikeshi-fim-ed25519-public <hex>`: the form of a public key file and
/// of `public_key` in the configuration.
pub fn public_line(key: &VerifyingKey) -> String {
    format!("{PUBLIC_TAG} {}\n", hex(key.as_bytes()))
}

/// Reads a secret key file.
pub fn read_secret(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read secret key {}", path.display()))?;
    let seed: [u8; 32] =
        text.trim().strip_prefix(SECRET_TAG).and_then(|rest| parse_hex(rest.trim())).with_context(
            || {
                format!(
                    "{}: not a hikeshi secret key (expected `{SECRET_TAG} <64 hex digits>`)",
                    path.display()
                )
            },
        )?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Parses a public key: `hikeshi-fim-ed25519-public <hex>` or bare hex.
pub fn parse_public(text: &str, origin: &str) -> Result<VerifyingKey> {
    let text = text.trim();
    let hex_part = text.strip_prefix(PUBLIC_TAG).unwrap_or(text).trim();
    let Some(bytes) = parse_hex::<32>(hex_part) else {
        bail!("{origin}: not an ed25519 public key (expected `{PUBLIC_TAG} <64 hex digits>`)");
    };
    VerifyingKey::from_bytes(&bytes)
        .with_context(|| format!("{origin}: not a valid ed25519 public key"))
}

/// Reads a public key file.
pub fn read_public(path: &Path) -> Result<VerifyingKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read public key {}", path.display()))?;
    parse_public(&text, &path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_round_trips_and_secret_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = generate().unwrap();
        let (s, p) = (dir.path().join("k"), dir.path().join("k.pub"));
        write_pair(&key, &s, &p).unwrap();
        assert_eq!(read_secret(&s).unwrap().as_bytes(), key.as_bytes());
        assert_eq!(read_public(&p).unwrap(), key.verifying_key());
        assert_eq!(std::fs::metadata(&s).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(write_pair(&key, &s, &p).is_err(), "must not overwrite a secret key");
        assert_ne!(generate().unwrap().as_bytes(), key.as_bytes());
    }

    #[test]
    fn malformed_keys_are_named() {
        let err =
            parse_public("hikeshi-fim-ed25519-public abc", "config [fim] public_key").unwrap_err();
        assert!(err.to_string().contains("[fim] public_key"), "{err}");
    }
}
