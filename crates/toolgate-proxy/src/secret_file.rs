//! Secrets kept in files beside the state: the audit hashing key and the admin token.
//!
//! Made once, on first use, as 32 random bytes in hex with mode 0600. Several gateways may
//! start at once: the file is created with `create_new`, and whoever loses the race reads the
//! winner's secret, so every process ends up with the same one.

use std::io::Write;
use std::path::Path;

/// 32 random bytes from the system, in hex.
pub fn random_hex_secret() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// The secret's text from `path`, trimmed, creating a new random one when the file is missing.
pub fn load_or_create_hex_secret(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok(text.trim().to_string()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let secret = random_hex_secret()?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())?;
            Ok(secret)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().to_string())
        }
        Err(e) => Err(e),
    }
}
